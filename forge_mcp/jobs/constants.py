"""Every number the job engine runs by. Settings may override the ones users tune."""

TICK_S = 0.2  # engine loop period when nothing wakes it earlier
# How long a tick waits to stop the worker of a host out of reach before settling its job
# (the attempt goes on in its thread); a kill that waited for the connection's timeout held up every job.
UNREACHABLE_KILL_WAIT_S = 5.0
POLL_WAIT_S = 0.5  # how long a tick waits for its executors' polls; a slower answer is taken at a later tick
HEARTBEAT_S = 1.0  # how often a worker writes a heartbeat event
LEASE_S = 30.0  # a RUNNING job whose heartbeat is older than this is treated as lost
CANCEL_GRACE_S = 10.0  # SIGTERM → SIGKILL
MAX_ATTEMPTS = 2  # tries per job, counting the first, for crash and restart recovery
MAX_QUEUED_PER_PRINCIPAL = 100
CPU_JOB_SLOTS = 2  # concurrent jobs that need no GPU
SERVICE_SLOTS = 4  # concurrent long-lived services (model servers) that need no GPU
LOG_TAIL_MAX_BYTES = 64 * 1024  # the most one job_logs call returns
WAIT_MAX_S = 600.0  # the longest one job_wait call blocks
STREAM_KEEPALIVE_S = 3.0  # longest silence on a task's event stream while its job runs
WAIT_POLL_S = 0.5  # job_wait re-reads the database this often (for jobs another process supervises)
METRIC_POINTS_MAX = 5000  # the most points one job_metrics call returns per series
JOB_ID_PREFIX = "job_"
LOCAL_TARGET = "local"  # compute: "local" is this machine, as no compute target at all
RAY_TASK_ENV = "FORGE_RAY_TASK"  # set in a job's Ray task: its data-parallel ranks become Ray Train workers
# Warm workers (executors/warm_pool.py): local workers started before their job, the training stack imported.
WARM_WORKERS = 1  # kept ready at once; 0 turns them off
WARM_PRELOAD = "training"  # what they import ahead (forge_mcp/jobs/warm_worker.py PRELOADS)
WARM_READY = b"ready\n"  # what a warm worker writes to the server once its imports are done
WARM_LOG = "warm-workers.log"  # in the workspace: what idle warm workers print (a taken one writes to its run's log)
WARM_STOP_WAIT_S = 5.0  # how long closing the pool waits for a killed idle worker to be gone
WARM_SESSION_NICE = 19  # an idle warm worker's session (Linux autogroup) yields the CPU to every other
WARM_RENICE_WAIT_S = 2.0  # a claimed worker retries its session's nice this long (the kernel rate-limits it)

# Reasons a job ends FAILED (or is retried); stable strings clients may match on.
REASON_SERVER_RESTART = "server_restart"
REASON_WORKER_LOST = "worker_lost"
REASON_HEARTBEAT_LOST = "heartbeat_lost"
REASON_HOST_UNREACHABLE = "host_unreachable"  # the executor could not reach the worker's host for a whole lease
REASON_WORKER_ERROR = "worker_error"
REASON_CANCELED = "canceled"
REASON_LAUNCH_FAILED = "launch_failed"
REASON_EXECUTOR_UNAVAILABLE = "executor_unavailable"  # the job's recorded executor is not configured here
REASON_COLLECT_FAILED = "collect_failed"  # the worker succeeded but its outputs could not be brought home
