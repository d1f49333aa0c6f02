"""The local harness: lay a model folder out as Azure ML does and run the real ``azmlinfsrv`` on loopback.

Used by ``make serve`` / ``make smoke`` and by the tests, so what a developer runs by hand and what the tests
check are the same code.
"""
