"""The fitting engine: one problem protocol, one driver, one exact finish, one preconditioner.

Linear, network, heteroscedastic and multi-output fits are adapters that build a problem; the
driver knows nothing of families (see ``../shared/DESIGN.md``, "The engine").
"""
