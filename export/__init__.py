"""dsqn-export: model.pt -> model.net (NetX HDF5, Loihi fixed point, with deployment metadata).
``dsqn.export(...)`` calls :func:`dsqn.api.export`."""

from dsqn.callable_module import make_callable

make_callable(__name__, "export")
