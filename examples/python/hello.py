"""Metaflow's hello world, with only the import changed."""
from baton import FlowSpec, step, current


class HelloFlow(FlowSpec):
    """A flow where baton says Hi."""

    @step
    def start(self):
        """This is the 'start' step."""
        print("HelloFlow is starting.")
        self.greeting = "hi"
        self.next(self.hello)

    @step
    def hello(self):
        """A step for baton to introduce itself."""
        self.message = "baton says %s" % self.greeting
        print(self.message)
        self.next(self.end)

    @step
    def end(self):
        """This is the 'end' step."""
        print("HelloFlow is all done:", current.flow_name, current.run_id, current.step_name, self.message)


if __name__ == "__main__":
    HelloFlow()
