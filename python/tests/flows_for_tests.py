"""Flow classes the unit tests parse (the graph reads this file's source)."""
from baton import FlowSpec, JSONType, Parameter, catch, resources, retry, schedule, step, timeout, trigger


@trigger(event="data_landed")
@schedule(daily=True)
class Shapes(FlowSpec):
    n = Parameter("n", default=3)
    cfg = Parameter("cfg", type=JSONType, default='{"a": 1}')
    name_ = Parameter("who", help="a name")

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.each, foreach="items")

    @retry(times=2, minutes_between_retries=1)
    @step
    def each(self):
        self.next(self.a, self.b)

    @timeout(hours=1, seconds=5)
    @step
    def a(self):
        self.next(self.ab)

    @resources(cpu=2, memory=1024, gpu=1)
    @step
    def b(self):
        self.next(self.ab)

    @step
    def ab(self, inputs):
        self.next(self.after)

    @step
    def after(self):
        self.next(self.fold)

    @step
    def fold(self, inputs):
        self.next(self.loop)

    @catch(var="err")
    @step
    def loop(self):
        self.next({"again": self.loop, "done": self.end}, condition="state")

    @step
    def end(self):
        pass


class NoNext(FlowSpec):
    @step
    def start(self):
        self.x = 1

    @step
    def end(self):
        pass


class Unknown(FlowSpec):
    @step
    def start(self):
        self.next(self.missing)

    @step
    def end(self):
        pass


class Cycle(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.next(self.a)

    @step
    def end(self):
        pass


class NoJoin(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.c)

    @step
    def b(self):
        self.next(self.c)

    @step
    def c(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class EndInForeach(FlowSpec):
    @step
    def start(self):
        self.xs = [1]
        self.next(self.end, foreach="xs")

    @step
    def end(self):
        pass


class NoEnd(FlowSpec):
    @step
    def start(self):
        self.next(self.start2)

    @step
    def start2(self):
        pass


class Orphan(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def lonely(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NotLast(FlowSpec):
    @step
    def start(self):
        self.next(self.end)
        print("after")

    @step
    def end(self):
        pass
