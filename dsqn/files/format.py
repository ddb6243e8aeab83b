"""The names of ``model.net``: the root attributes that hold this project's metadata (netx never reads them), the
layer and neuron types it writes and reads, and their versions. Key names are defined here only; the blocks that
write a layer (``dsqn.layers.cuba``) and the reader and writer (``netfile_read``, ``netfile``) import them."""

FORMAT_NAME = "dsqn-netx"
# 2: T, reset offset and readout written once (``timesteps``, ``reset_offset``, ``readout.{kind, scale}``);
#    the reset interval and the readout divisor follow from them (dsqn.kernels.timing, dsqn.layers.readout).
# 1: also wrote reset_interval, readout.q_scale/divisor and the training config; still read.
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
ATTR_FORMAT = "dsqn_format"
ATTR_VERSION = "dsqn_format_version"
ATTR_META = "dsqn_meta"  # JSON: env_id, timesteps, reset_offset, encoder, input_message_bits, readout, n_actions, ...
REQUIRED_META = ("env_id", "timesteps", "encoder", "readout", "n_actions", "input_shape", "reset_offset", "input_message_bits")
SUPPORTED_LAYERS = ("input", "dense", "conv", "flatten")
NEURON_KEYS = ("iDecay", "vDecay", "vThMant")
# Heterogeneous neurons (Akl et al. 2023, quantized into groups): ``neuron/type`` = CUBA_GROUPS, ``iDecay``,
# ``vDecay``, ``vThMant`` one value per group, ``group`` the group of every neuron (in the layer's neuron order),
# ``groupsVersion``. Stock netx knows no such neuron type and refuses the file (its get_neuron_params returns None);
# homogeneous layers stay CUBA with scalars, so files without heterogeneous layers load in stock netx unchanged.
GROUPED_NEURON_TYPE = "CUBA_GROUPS"
GROUPS_VERSION = 1
