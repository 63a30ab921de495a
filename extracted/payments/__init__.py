"""The payments service: card payments, their idempotent charges and refunds.

Answers the monolith's staff API ``/api/payments/`` from its own database, and
the internal API the orders service's checkout saga calls
(``/internal/payments/charges``), where every write carries an
``Idempotency-Key`` (:mod:`.idempotency`) and goes to a card provider
(:mod:`.provider`): the bundled sandbox, a simulated processor with its own
durable ledger that can be told to decline, hang, fail after charging or be
down. :mod:`.services` drives a charge or refund through claim, provider call
and record. Run it with
``uvicorn --factory extracted.payments.app:create_app --port 8103``.
"""
