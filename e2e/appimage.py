"""The app image of the end-to-end suite: static busybox in an empty image.

`python e2e/appimage.py` prints its Containerfile (the build context holds bin/busybox
and applet links). ENTRYPOINT/CMD are what the webhook reads from the registry when a
pod sets no command; the CMD is the same script the cases run.
"""

import json

# Prints a start marker, PID 1's environment (the app is PID 1: secrets-init exec'd it)
# and the script's arguments.
APP_SCRIPT = (
    "echo E2E-APP-STARTED; echo E2E-ENVIRON-BEGIN; tr '\\0' '\\n' </proc/1/environ; "
    'echo E2E-ENVIRON-END; for a in "$@"; do echo "E2E-ARG=$a"; done'
)
ENTRYPOINT = ["/bin/sh", "-c"]

if __name__ == "__main__":
    print("FROM scratch")
    print("COPY bin/ /bin/")
    print(f"ENTRYPOINT {json.dumps(ENTRYPOINT)}")
    print(f"CMD {json.dumps([APP_SCRIPT])}")
