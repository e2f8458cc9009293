"""Start-up: the settings (read once from the environment), the checks made before
anything starts (``preflight``), and what a server process does when it cannot start
(``boot``)."""
