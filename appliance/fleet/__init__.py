"""`appliance fleet`: many agents from one folder of configs.

One ``*.yaml`` per agent in a folder. :mod:`.agents` reads the folder (each file validated as
`appliance up` would); :mod:`.docker` runs one container per agent through the Docker API
(docker or podman); :mod:`.kubernetes` renders one kustomize overlay per agent.
"""
