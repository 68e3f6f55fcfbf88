"""Drivers: trusted helpers that run *beside* a submission, in its child process, through
``submission.run(fn, …)``, for what a proxy call cannot express (a backward pass, a training
loop, a look at which tensors are shared). One module per week (`w01` … `w10`) and one toolbox
they share (`common`). They return data only; every verdict is computed by the test.

Drivers ship to students with the engine (the public tests use some) and run in the child, so
they import nothing but torch, numpy and each other, and build the models they train themselves.
"""
