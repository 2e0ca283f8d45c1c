"""The `agora` command line. The packages that do the work are agents, dialogue and trainers."""
