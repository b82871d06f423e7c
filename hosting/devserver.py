"""`make run`'s last step: the web server and the worker side by side, stopped together.

python -m hosting.devserver [--host 127.0.0.1] [--port 8000]
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys

from hosting.database import localdb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    args = parser.parse_args()
    python = sys.executable
    env = dict(os.environ)
    if not localdb.configured("SITE_URL"):
        # The checkout simulator posts its events to SITE_URL: this server, on this port.
        env["SITE_URL"] = f"http://{args.host}:{args.port}"
    processes = [
        subprocess.Popen([python, "manage.py", "worker"], env=env),
        subprocess.Popen([python, "manage.py", "runserver", f"{args.host}:{args.port}"], env=env),
    ]
    print(f"Hosting is up on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while all(process.poll() is None for process in processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                processes[0].wait(timeout=1)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait()
    sys.exit(max(process.returncode or 0 for process in processes))


if __name__ == "__main__":
    main()
