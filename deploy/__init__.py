"""dsqn-deploy: an exported network closed-loop on the emulator, the Lava simulator or Loihi 2, its activity
counted and priced. ``dsqn.deploy(...)`` calls :func:`dsqn.api.deploy`."""

from dsqn.callable_module import make_callable

make_callable(__name__, "deploy")
