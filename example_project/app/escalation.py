"""Two-step target: find the product a ticket is about, then rate its priority."""

from pytest_mipro import Module, Predict, Prediction

PRODUCTS = ("thermostat", "camera", "doorbell", "app")
PRIORITIES = ("urgent", "normal", "low")


class Escalation(Module):
    """Step 1 names the product; step 2 rates the priority knowing the product."""

    def __init__(self) -> None:
        self.find_product = Predict(
            "ticket -> product",
            instructions="Name the product the ticket is about: thermostat, camera, doorbell or app.",
        )
        self.rate_priority = Predict(
            "ticket, product -> priority",
            instructions=(
                "Rate the ticket's priority: urgent (a safety or security risk, or a device that is down "
                "when it is needed), normal (broken but with a workaround) or low (questions and wishes)."
            ),
        )

    def forward(self, ticket: str) -> Prediction:
        product = _first_word(self.find_product(ticket=ticket).product)
        priority = _first_word(self.rate_priority(ticket=ticket, product=product).priority)
        return Prediction(product=product, priority=priority)


def _first_word(text: str) -> str:
    """The model's answer as one lowercase word ("Camera." -> "camera")."""
    words = text.strip().split()
    return words[0].strip(".,;:!\"'").lower() if words else ""
