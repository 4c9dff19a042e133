"""Single-prompt target: which team handles a support ticket."""

from pytest_mipro import Predict

TEAMS = ("billing", "technical", "account", "shipping")

triage = Predict(
    "ticket -> team",
    instructions=(
        "Route the support ticket to one team: billing (charges, refunds, invoices, plans), "
        "technical (a device or the app does not work), account (login, password, profile, users) "
        "or shipping (orders, delivery, returns). Answer with the team name only."
    ),
)
