"""Fails in `train` unless the file `ok` exists beside the flow: create it
and `python3 resume.py resume` reuses `start` and runs the rest."""
import os

from baton import FlowSpec, step


class ResumeFlow(FlowSpec):
    @step
    def start(self):
        self.data = list(range(3))
        self.next(self.train)

    @step
    def train(self):
        if not os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ok")):
            raise RuntimeError("no ok file yet")
        self.model = sum(self.data)
        self.next(self.end)

    @step
    def end(self):
        print("model", self.model)


if __name__ == "__main__":
    ResumeFlow()
