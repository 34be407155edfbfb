import time, warnings, sys
from sklearn.utils.estimator_checks import check_estimator
from bayesloss.sklearn import LikelihoodRegressor, LikelihoodClassifier, EXPECTED_FAILED_CHECKS
for est in [LikelihoodRegressor(), LikelihoodClassifier()]:
    t=time.time(); times=[]
    def cb(**kw):
        global t
        times.append((time.time()-t, kw["check_name"], kw["status"], repr(kw.get("exception"))[:300])); t=time.time()
    res = check_estimator(est, on_fail=None, callback=cb, expected_failed_checks=EXPECTED_FAILED_CHECKS[type(est).__name__])
    for x in sorted(times)[-6:]: print(type(est).__name__, x)
    for x in times:
        if x[2] not in ("passed",): print("!!", x)
    print(type(est).__name__, "total", sum(x[0] for x in times))
