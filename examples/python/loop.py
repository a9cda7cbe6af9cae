"""A loop: a step that switches back to itself until it is done."""
from baton import FlowSpec, Parameter, current, step


class LoopFlow(FlowSpec):
    target = Parameter("target", default=5)

    @step
    def start(self):
        self.count = 0
        self.seen = []
        self.next(self.improve)

    @step
    def improve(self):
        self.count += 1
        self.seen.append(current.iteration)
        self.status = "done" if self.count >= self.target else "again"
        self.next({"again": self.improve, "done": self.end}, condition="status")

    @step
    def end(self):
        print("counted to", self.count, self.seen)


if __name__ == "__main__":
    LoopFlow()
