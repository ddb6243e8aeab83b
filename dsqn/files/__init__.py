"""The files the stages hand over: model.pt (checkpoint), model.net (NetX HDF5 + metadata), and atomic writes."""
