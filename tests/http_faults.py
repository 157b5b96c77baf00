#!/usr/bin/env python3
"""The vLLM test double with one HTTP fault that the real vLLM never produces (stdlib only).

    python3 tests/http_faults.py [--fault NAME [--fault-arg TEXT] [--fault-path ROUTE]] [--print-env VAR]
                                 [vllm_double.py options and vLLM args]

Everything else is the double (tests/vllm_double.py), unchanged: the fault replaces one route's answer.
vLLM ends every chat stream with a usage chunk (when stream_options.include_usage asks) and then
`data: [DONE]` (serving_chat.py, chat_completion_stream_generator); these faults break that, or answer
with bytes no vLLM sends, so the kit's handling of a broken server can be tested. FAULTS lists them.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_double as double  # noqa: E402

CHAT = "/v1/chat/completions"


def sse_request(h, body):
    """Headers of a stream, and the request fields the double's chunk() needs."""
    h.start_sse()
    return {"id": "chatcmpl-fault", "created": int(time.time()), "n_in": 1, "max": body.get("max_tokens", 1),
            "ignore_eos": False}


def token(req, text, finish=None):
    return double.chunk(req, [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}])


def streamed(fn):
    """A chat fault for streamed requests only; the non-streamed warm-up gets the double's answer."""
    def route(h, q, body, arg):
        if not (isinstance(body, dict) and body.get("stream")):
            return double.r_chat(h, q, body)
        return fn(h, sse_request(h, body), arg)
    return route


@streamed
def cut(h, req, arg):
    """Two chunks, then the connection closes: no end of the chunked body, no usage, no [DONE]."""
    h.send_sse(token(req, ""))
    h.send_sse(token(req, " t0"))
    h.close_connection = True


@streamed
def no_done(h, req, arg):
    """A whole stream with its usage chunk, ended cleanly but without `data: [DONE]`."""
    h.send_sse(token(req, " t0", "length"))
    h.send_sse(double.chunk(req, [], usage=double.usage(req, 1)))
    h.wfile.write(b"0\r\n\r\n")


@streamed
def no_usage(h, req, arg):
    """Tokens and [DONE], but no usage chunk although include_usage asked for one."""
    h.send_sse(token(req, " t0", "length"))
    h.end_sse()


@streamed
def drip(h, req, arg):
    """One chunk every ARG seconds (default 0.5), forever: each read is quick, the call never ends."""
    try:
        while True:
            h.send_sse(token(req, " t"))
            time.sleep(float(arg or 0.5))
    except OSError:   # the client gave up
        h.close_connection = True


@streamed
def sse(h, req, arg):
    """One `data: ARG` event (garbage, or JSON that is no chunk), then a proper end."""
    h.send_sse(arg)
    h.send_sse(double.chunk(req, [], usage=double.usage(req, 1)))
    h.end_sse()


def plain_body(h, q, body, arg):
    """200 with ARG as the body (on /wake_up unless --fault-path names another route)."""
    data = arg.encode()
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def drip_body(h, q, body, arg):
    """200 announcing a 100-byte body, then one byte every ARG seconds (default 0.5)."""
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    try:
        for _ in range(100):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(float(arg or 0.5))
    except OSError:   # the client gave up
        h.close_connection = True


def reply(h, q, body, arg):
    """Non-streamed chat: 200 with ARG as the JSON body; streamed chat is the double's."""
    if isinstance(body, dict) and body.get("stream"):
        return double.r_chat(h, q, body)
    return plain_body(h, q, body, arg)


FAULTS = {   # name -> (the route it replaces by default, its answer)
    "cut": (CHAT, cut), "no_done": (CHAT, no_done), "no_usage": (CHAT, no_usage), "drip": (CHAT, drip),
    "sse": (CHAT, sse), "reply": (CHAT, reply), "body": ("/wake_up", plain_body), "drip_body": ("/sleep", drip_body),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fault", choices=sorted(FAULTS))
    p.add_argument("--fault-arg", default="")
    p.add_argument("--fault-path", default="", help="the route to break (default: the fault's own)")
    p.add_argument("--print-env", default="", help="print this environment variable's value at start-up "
                                                   "(a server that leaks a token into its log)")
    opts, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    if opts.print_env:
        double.log(f"DOUBLE-NOTE {opts.print_env}={os.environ.get(opts.print_env, '')}")
    if opts.fault:
        path, answer = FAULTS[opts.fault]
        path = opts.fault_path or path
        method, _, dev, dead = double.ROUTES[path]
        double.ROUTES[path] = (method, lambda h, q, b: answer(h, q, b, opts.fault_arg), dev, dead)
        double.log(f"DOUBLE-FAULT http {opts.fault} on {path} ({json.dumps(opts.fault_arg)})")
    double.main(rest)


if __name__ == "__main__":
    main()
