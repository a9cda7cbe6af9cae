from baton import FlowSpec, step, Parameter, JSONType, current, retry, timeout, catch, resources

class Squares(FlowSpec):
    n = Parameter("n", default=4, type=int, help="how many")
    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.square, foreach="items")
    @step
    def square(self):
        self.sq = self.input ** 2          # self.index is the position
        self.next(self.join)
    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)
    @step
    def end(self):
        print(current.flow_name, current.run_id, self.total)

if __name__ == "__main__":
    Squares()
