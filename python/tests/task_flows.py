from baton import FlowSpec, catch, current, step


class T(FlowSpec):
    @step
    def start(self):
        self.items = ["x", "y", "z"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.got = (self.input, self.index, self.a)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, exclude=self.exclude_for_test)
        self.next(self.end)

    @step
    def end(self):
        self.c = self.a + 1
        self.next_case = "go"
        self.next({"go": self.end}, condition="next_case")

    @catch(var="err")
    @step
    def boom(self):
        raise KeyError("bad")
