"""The composition root and the process around it: config, graph, CLI, control commands."""
