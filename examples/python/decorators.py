"""@retry, @catch, @timeout and @resources."""
from baton import FlowSpec, catch, current, resources, retry, step, timeout


class DecoratorFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self):
        # Fails on the first attempt, succeeds on the retry.
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        self.attempt = current.retry_count
        self.next(self.doomed)

    @catch(var="failure")
    @timeout(minutes=5)
    @resources(cpu=1, memory=256)
    @step
    def doomed(self):
        raise ValueError("always")
        self.next(self.end)

    @step
    def end(self):
        self.summary = "attempt=%d failure=%s" % (self.attempt, self.failure.exception)
        print(self.summary)


if __name__ == "__main__":
    DecoratorFlow()
