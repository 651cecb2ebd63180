"""The test bed, and every helper the tests share: nothing here is collected as a test (the bed's
own tests are tests/test_bed.py).

Real parts, on free ports:

- kube.py: kube-apiservers with etcd (``make testbed``, ``python -m tests.bed``); certs.py, the
  bed's certificates; rbac.py, what a subject may do (SubjectAccessReview) and the admin's
  writes.
- redis.py: redis-servers, plain or locked as managed ones are.
- process.py: the one way a program is started (it dies with the test run), and free ports.
- In front of an API server: front.py (answers in its place: 429s, 503s, slow answers),
  relay.py (vanishes or goes silent), connect_proxy.py (a corporate HTTP proxy);
  accounts.py, service accounts, their tokens and exec plugins for the credential tests.

Transporter, as the tests run it:

- roles.py: ``transporter`` as real processes (a control plane for a ``with`` block, roles
  killed with -9 and started again, the token and bundle commands, the single file's path).
- harness.py: a control plane and agents in the test's own trio loop; finish, read.
- pki.py: the run's CA and event-signing key, and agents' bundles from them.
- clients.py: raw HTTP requests and a raw agent; manifests.py, what tests submit.
- producer.py, follow.py, configmaps.py, crashloop.py: a producer that retries through crashes,
  following events to their end, and the kill -9 cycles of the fault tests and bench/crash.py.
- faultproxy.py: a TCP proxy between agent and control plane whose faults a test switches;
  listen.py: a listener of our own on a free port.
- logwatch.py: what ``transporter`` logs in the test's process; sink.py: a worker's messages.
- records.py: events, updates and agents with every field set; secrets.py, a Secret whose
  values must never show; store_backends.py, where a store under test keeps its data;
  policies.py, planned objects and cluster views for the policy tests.

Fixtures built on these are defined once, in tests/conftest.py (and the suites' conftests).
"""
