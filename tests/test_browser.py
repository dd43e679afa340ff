"""The dashboard in a real browser: headless chromium opens `inv dashboard`'s tunnel, logs in
with the cluster's token as README says (the page asks for it), and shows this cluster's
nodes. Without the token the tunnel gives nothing away."""

import json
import os
import signal
import socket
import urllib.error
import urllib.request

import jsonschema
import pytest

from browser import Browser, unavailable_reason
from conftest import read_until, start_inv
from test_output import readme_schema

TOKEN_FIELD = "document.querySelector('input[placeholder=\"Enter your authentication token\"]')"
SUBMIT = ("[...document.querySelectorAll('button')]"
          ".find(button => button.textContent.trim() === 'Submit')")


@pytest.fixture(scope="module")
def browser():
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test, but: {reason}")
        pytest.skip(reason)
    with Browser() as opened:
        yield opened


@pytest.fixture
def tunnel(running):
    """`inv dashboard --json` running; yields its URL and what it printed (its JSON document
    last, printed once the tunnel is open)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    process = start_inv(running, "dashboard", f"--local-port={port}", "--json")
    try:
        said = "".join(read_until(process, '"task": "dashboard"', timeout=60))
        yield f"http://127.0.0.1:{port}", said
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def shows_all(ips):
    return " && ".join(f"document.body.innerText.includes({json.dumps(ip)})" for ip in ips)


def test_dashboard_shows_the_cluster_nodes_after_the_token_log_in(netns_cluster, running,
                                                                  tunnel, browser):
    url, said = tunnel
    with open(running["INVOKE_RAY_AUTH_TOKEN_FILE"]) as handle:
        token = handle.read().strip()
    assert running["INVOKE_RAY_AUTH_TOKEN_FILE"] in said
    document = json.loads(said.splitlines()[-1])
    jsonschema.validate(document, readme_schema())
    assert document["url"] == url and document["ok"], document
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/nodes?view=summary", timeout=20)
    assert refused.value.code == 401
    ips = [host.ip for host in netns_cluster.hosts]

    browser.open(f"{url}/#/cluster")
    before = browser.wait_for(f"!!{TOKEN_FIELD}")
    assert "Authentication Token Required" in before
    assert not any(ip in before for ip in ips), before
    browser.evaluate(f"{TOKEN_FIELD}.focus()")
    browser.type_text(token)
    browser.evaluate(f"{SUBMIT}.click()")
    after = browser.wait_for(shows_all(ips))
    assert "Authentication Token Required" not in after
