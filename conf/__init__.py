# Hydra configs, importable so that `pkg://conf` finds them wherever Agora is installed.
