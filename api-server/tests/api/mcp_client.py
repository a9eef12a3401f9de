"""Drives Faxbot's MCP endpoint with the official MCP Python SDK (PyPI `mcp`), as an assistant's client would.

Usage: mcp_client.py SCENARIO URL KEY [ARG]
       mcp_client.py stdio BRIDGE FAXBOT_URL KEY PDF   (the stdio bridge faxbot-mcp, started as a subprocess)
  full    every tool: send a fax (ARG: a PDF) and follow it to SUCCESS, list faxes, cancel a held job, list
          and read the received faxes, fetch a document inline and by its link, and the errors of bad input
  scopes  what a key limited to fax:send sees and may call
  send    ARG times send_fax over one session (the load test calls this from several processes)

Prints one JSON object: what each step answered, as the wire JSON (model_dump by alias), so the Rust test that
runs this asserts on the protocol, not on the SDK's Python types. The key goes in `Authorization: Bearer` for
`full` and in `X-API-Key` otherwise: the server takes both.
"""

import asyncio
import base64
import json
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def wire(result):
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


async def call(session, name, arguments):
    """A tool call's wire result, or the protocol error it raised."""
    try:
        return wire(await session.call_tool(name, arguments))
    except Exception as e:  # noqa: BLE001 - the test asserts on what was raised
        error = getattr(e, "error", None)
        return {"protocol_error": {"type": type(e).__name__, "code": getattr(error, "code", None),
                                   "message": getattr(error, "message", str(e))}}


def structured(result):
    return result.get("structuredContent") or {}


async def until(session, job_id, wanted, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        status = await call(session, "get_fax_status", {"id": job_id})
        if structured(status).get("status") in wanted or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


async def full(session, url, key, pdf_path):
    out = {}
    with open(pdf_path, "rb") as f:
        document = base64.b64encode(f.read()).decode()
    out["tools"] = sorted(t["name"] for t in wire(await session.list_tools())["tools"])
    sent = await call(session, "send_fax", {"to": "+15551230123", "document_base64": document,
                                           "idempotency_key": "mcp-full-1"})
    out["sent"] = sent
    job = structured(sent).get("id")
    out["final"] = await until(session, job, {"SUCCESS", "FAILED"})
    out["replayed"] = await call(session, "send_fax", {"to": "+15551230123", "document_base64": document,
                                                      "idempotency_key": "mcp-full-1"})
    out["listed"] = await call(session, "list_faxes", {"limit": 10})
    # The simulated line answers busy for numbers ending 0002 and retries much later: the job waits, unsent.
    held = structured(await call(session, "send_fax", {"to": "+15551230002", "document_base64": document}))
    for _ in range(50):
        cancelled = await call(session, "cancel_fax", {"id": held.get("id")})
        if "submitted right now" not in json.dumps(cancelled):
            break
        await asyncio.sleep(0.1)
    out["cancelled"] = cancelled
    inbound = await call(session, "list_inbound", {})
    out["inbound"] = inbound
    first = (structured(inbound).get("faxes") or [{}])[0].get("id")
    out["inbound_one"] = await call(session, "get_inbound", {"id": first})
    pdf = await call(session, "get_inbound_pdf", {"id": first, "include_document": True})
    link = structured(pdf).get("url")
    blob = next((c["resource"]["blob"] for c in pdf.get("content", []) if c.get("type") == "resource"), "")
    out["inbound_pdf"] = {"isError": pdf.get("isError", False), "has_url": bool(link),
                          "blob_is_pdf": base64.b64decode(blob)[:5] == b"%PDF-" if blob else False}
    # The link works without the key. It names PUBLIC_API_URL, which the test server (on a random port) does
    # not know: keep its path and query, on the server's address.
    if link:
        server, path = urlsplit(url), urlsplit(link)
        link = urlunsplit((server.scheme, server.netloc, path.path, path.query, ""))
    async with httpx2.AsyncClient() as plain:
        fetched = await plain.get(link) if link else None
    out["link"] = {"status": fetched.status_code if fetched else None,
                   "is_pdf": fetched.content[:5] == b"%PDF-" if fetched else False}
    # A text document over 64 KiB of base64 (decoded on the work pool), sent without its padding.
    text = ("Referral letter, line of text for the MCP test.\n" * 1500).encode() + b"x"
    out["large_unpadded"] = await call(session, "send_fax", {"to": "+15551230123",
                                                            "document_base64": base64.b64encode(text).decode().rstrip("=")})
    out["bad_number"] = await call(session, "send_fax", {"to": "call me", "document_base64": document})
    out["not_base64"] = await call(session, "send_fax", {"to": "+15551230123", "document_base64": "%%%"})
    out["not_a_document"] = await call(session, "send_fax", {"to": "+15551230123",
                                                            "document_base64": base64.b64encode(b"\x00\x01zip").decode()})
    out["unknown_job"] = await call(session, "get_fax_status", {"id": "0123456789abcdef0123456789abcdef"})
    out["wrong_type"] = await call(session, "get_fax_status", {"id": 42})
    out["unknown_tool"] = await call(session, "delete_everything", {})
    return out


async def scopes(session, url, key, _arg):
    out = {"tools": sorted(t["name"] for t in wire(await session.list_tools())["tools"])}
    out["status_call"] = await call(session, "get_fax_status", {"id": "0123456789abcdef0123456789abcdef"})
    out["inbound_call"] = await call(session, "list_inbound", {})
    return out


async def send(session, url, key, count):
    document = base64.b64encode(b"Faxbot MCP load test\n").decode()
    ids, errors, latencies = [], [], []
    for i in range(int(count)):
        started = time.monotonic()
        result = await call(session, "send_fax", {"to": "+15551230123", "document_base64": document})
        latencies.append(time.monotonic() - started)
        if result.get("isError") or "protocol_error" in result:
            errors.append(result)
        else:
            ids.append(structured(result).get("id"))
    return {"ids": ids, "errors": errors, "latencies": latencies}


async def stdio(session, pdf_path):
    tools = wire(await session.list_tools())["tools"]
    send_schema = next(t["inputSchema"] for t in tools if t["name"] == "send_fax")
    out = {"tools": sorted(t["name"] for t in tools), "send_schema": send_schema}
    sent = await call(session, "send_fax", {"to": "+15551230123", "path": pdf_path})
    out["sent"] = sent
    out["final"] = await until(session, structured(sent).get("id"), {"SUCCESS", "FAILED"})
    out["missing_file"] = await call(session, "send_fax", {"to": "+15551230123", "path": pdf_path + ".gone"})
    out["bad_number"] = await call(session, "send_fax", {"to": "call me", "path": pdf_path})
    return out


async def plugin_tools(session, url, key, name):
    tools = wire(await session.list_tools())["tools"]
    out = {"tools": sorted(t["name"] for t in tools)}
    out["schema"] = next((t["inputSchema"] for t in tools if t["name"] == name), None)
    out["call"] = await call(session, name, {})
    out["bad_args"] = await call(session, name, {"unexpected": "x"})
    return out


SCENARIOS = {"full": full, "scopes": scopes, "send": send, "plugin_tools": plugin_tools}


async def main_stdio():
    bridge, faxbot_url, key, pdf_path = sys.argv[2:6]
    params = StdioServerParameters(command=bridge, env={"FAXBOT_URL": faxbot_url, "FAXBOT_API_KEY": key})
    async with stdio_client(params) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            init = await session.initialize()
            out = await stdio(session, pdf_path)
            out["server"] = wire(init).get("serverInfo", {})
    print(json.dumps(out))


async def main():
    if sys.argv[1] == "stdio":
        return await main_stdio()
    scenario, url, key = sys.argv[1], sys.argv[2], sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    headers = {"Authorization": f"Bearer {key}"} if scenario == "full" else {"X-API-Key": key}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                init = await session.initialize()
                out = await SCENARIOS[scenario](session, url, key, arg)
                out["server"] = wire(init).get("serverInfo", {})
                out["protocol"] = wire(init).get("protocolVersion")
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
