"""A WSGI wrapper that names the worker in a header, to prove a flip reached every worker."""

import os


def with_worker_pid(wsgi_app):
    def app(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

        return wsgi_app(environ, start)

    return app
