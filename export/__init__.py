"""dsqn-export: model.pt -> model.net (NetX HDF5, Loihi fixed point, with deployment metadata)."""
