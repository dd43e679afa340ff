"""ray-tasks: stand up and operate a Ray cluster on machines you already have, over SSH."""
