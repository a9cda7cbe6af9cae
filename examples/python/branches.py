"""Static branches joined by name, and merge_artifacts."""
from baton import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.shared = {"seed": 7}
        self.x = 1
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 10
        self.from_a = "A"
        self.next(self.join)

    @step
    def b(self):
        self.x = 20
        self.next(self.join)

    @step
    def join(self, inputs):
        self.x_sum = inputs.a.x + inputs.b.x
        self.xs = sorted(i.x for i in inputs)
        # x differs between the branches: it must be set or excluded.
        self.merge_artifacts(inputs, exclude=["x"])
        self.next(self.end)

    @step
    def end(self):
        assert self.shared == {"seed": 7} and self.from_a == "A"
        self.result = "%d %s" % (self.x_sum, self.xs)
        print(self.result)


if __name__ == "__main__":
    BranchFlow()
