"""A nested foreach: markets, then cities of each market, joined level by level."""
from baton import FlowSpec, JSONType, Parameter, step


class NestedFlow(FlowSpec):
    markets = Parameter("markets", type=JSONType, default='{"US": ["nyc", "sf"], "BR": ["rio"]}')

    @step
    def start(self):
        self.names = sorted(self.markets)
        self.next(self.market, foreach="names")

    @step
    def market(self):
        self.market_name = self.input
        self.cities = self.markets[self.input]
        self.next(self.city, foreach="cities")

    @step
    def city(self):
        self.label = "%s/%s" % (self.market_name, self.input)
        self.next(self.check)

    @step
    def check(self):
        # Not a join: runs once per city, and still sees the city's input.
        self.label = self.label.upper() + "#%d" % self.index
        self.next(self.per_market)

    @step
    def per_market(self, inputs):
        self.labels = [i.label for i in inputs]
        self.merge_artifacts(inputs, include=["market_name"])
        self.next(self.report)

    @step
    def report(self, inputs):
        self.all = {i.market_name: i.labels for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        print(self.all)


if __name__ == "__main__":
    NestedFlow()
