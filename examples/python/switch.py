"""A switch: the step after it runs whichever case was taken."""
from baton import FlowSpec, Parameter, step


class SwitchFlow(FlowSpec):
    score = Parameter("score", default=0.5, type=float)

    @step
    def start(self):
        self.decision = "promote" if self.score >= 0.9 else "hold"
        self.next({"promote": self.deploy, "hold": self.report}, condition="decision")

    @step
    def deploy(self):
        self.outcome = "deployed"
        self.next(self.notify)

    @step
    def report(self):
        self.outcome = "held at %.2f" % self.score
        self.next(self.notify)

    @step
    def notify(self):
        self.message = "%s: %s" % (self.decision, self.outcome)
        self.next(self.end)

    @step
    def end(self):
        print(self.message)


if __name__ == "__main__":
    SwitchFlow()
