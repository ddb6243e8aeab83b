"""hw_sim: the bit-exact emulator of Loihi's fixed-point CUBA-LIF network (``emulator``) and the per-layer activity
counters every backend shares (``counters``). Pricing that activity is the report stage's (``dsqn.report``)."""
