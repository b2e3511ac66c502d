"""ACR Tasks: quick builds, multi-step runs, saved tasks, their runs and logs, built with buildah."""
