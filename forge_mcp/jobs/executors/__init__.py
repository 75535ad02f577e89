"""Where a job's worker runs (DESIGN §4c). base.py is the interface the engine talks to;
each executor is one module beside it: local.py (a process group on this machine) today,
ssh.py and ray.py later. The engine picks one by name, as recorded on the job."""
