"""The report stage: prices the activity that deployment counted (``energy``: profiles with their sources, the
same-shape ANN, break-even rates, sensitivity), prints it, and draws it (``html``: ``dsqn-report``'s page, ``figures``:
every figure's style). Fed by hw_sim's counts through the report JSON; it runs nothing."""
