"""A stand-in kernel that reports why the Rust kernel could not start.

kernel/launch.sh runs it on the same connection file when evcxr_jupyter exits with an error while
starting (typically: the helper crate failed to compile). Every cell then fails with that error,
so the notebook shows the compiler's message instead of a silently dead kernel. Restarting the
kernel tries evcxr again.

usage: python error_kernel.py CONNECTION_FILE MESSAGE_FILE
"""

import asyncio
import sys

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

MESSAGE = ""


class RustStartupErrorKernel(Kernel):
    implementation = "rust-multiprocessing-startup-error"
    implementation_version = "1.0"
    language = "rust"
    language_version = ""
    language_info = {
        "name": "rust",
        "mimetype": "text/rust",
        "file_extension": ".rs",
        "pygment_lexer": "rust",
        "codemirror_mode": "rust",
    }
    banner = "Rust (multiprocessing): the kernel could not start.\n\n" + MESSAGE

    _first = True

    async def do_execute(
        self, code, silent, store_history=True, user_expressions=None, allow_stdin=False, **kwargs
    ):
        if self._first:
            # This kernel took over ports whose first owner (evcxr) died: give the clients' iopub
            # sockets a moment to reconnect, or the first cell's output is lost.
            type(self)._first = False
            await asyncio.sleep(1.5)
        error = {
            "ename": "KernelStartupError",
            "evalue": MESSAGE.splitlines()[0] if MESSAGE else "the Rust kernel could not start",
            "traceback": MESSAGE.splitlines(),
        }
        if not silent:
            self.send_response(self.iopub_socket, "error", error)
        return {"status": "error", "execution_count": self.execution_count, **error}

    def do_is_complete(self, code):
        return {"status": "complete"}


def main():
    global MESSAGE
    conn, message_file = sys.argv[1], sys.argv[2]
    with open(message_file, encoding="utf-8", errors="replace") as f:
        MESSAGE = f.read()
    RustStartupErrorKernel.banner = "Rust (multiprocessing): the kernel could not start.\n\n" + MESSAGE
    IPKernelApp.launch_instance(kernel_class=RustStartupErrorKernel, argv=["-f", conn])


if __name__ == "__main__":
    main()
