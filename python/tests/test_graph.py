import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flows_for_tests as F  # noqa: E402

from baton.cli import baton_flow_name, generate  # noqa: E402
from baton.errors import BatonFlowError  # noqa: E402
from baton.graph import FlowGraph  # noqa: E402


class GraphTest(unittest.TestCase):
    def test_shapes(self):
        g = FlowGraph(F.Shapes)
        self.assertEqual(g.order, ["start", "each", "a", "b", "ab", "after", "fold", "loop", "end"])
        self.assertEqual(g["start"].type, "foreach")
        self.assertEqual(g["start"].foreach_var, "items")
        self.assertEqual(g["each"].type, "split-static")
        self.assertEqual(g["ab"].join_kind, "static")
        self.assertEqual(g["fold"].join_kind, "foreach")
        self.assertEqual(g["loop"].type, "switch")
        self.assertEqual(g["loop"].cases, {"again": "loop", "done": "end"})
        self.assertEqual(g["loop"].back_to, ["loop"])
        self.assertEqual(g["loop"].loop_from, "loop")
        self.assertEqual(g["loop"].needs, ["fold"])
        self.assertEqual(g["ab"].needs, ["a", "b"])
        self.assertEqual(g["each"].foreach_parent, "start")

    def assertFlowError(self, cls, *want):
        with self.assertRaises(BatonFlowError) as cm:
            FlowGraph(cls)
        for w in want:
            self.assertIn(w, str(cm.exception))
        return cm.exception

    def test_errors_name_the_step(self):
        e = self.assertFlowError(F.NoNext, "Step *start* is missing a self.next()")
        self.assertEqual(e.step, "start")
        self.assertFlowError(F.Unknown, "Step *start*", "unknown step, *missing*")
        self.assertFlowError(F.Cycle, "Step *b* goes back to step *a*")
        self.assertFlowError(F.NoJoin, "Step *c* is reached from several branches", "inputs")
        self.assertFlowError(F.EndInForeach, "Step *end* is inside the foreach split of step *start*")
        self.assertFlowError(F.NoEnd, "*end*")
        self.assertFlowError(F.Orphan, "Step *lonely* is unreachable")
        self.assertFlowError(F.NotLast, "Step *start*", "last")

    def test_generate(self):
        g = FlowGraph(F.Shapes)
        doc = generate(F.Shapes, g, F.__file__, "/tmp", python="/usr/bin/python3")
        self.assertEqual(doc["name"], "shapes")
        self.assertEqual(doc["params"]["n"], {"type": "int", "default": 3})
        self.assertEqual(doc["params"]["cfg"], {"type": "json", "default": {"a": 1}})
        self.assertEqual(doc["params"]["who"], {"type": "string", "description": "a name"})
        steps = {s["name"]: s for s in doc["steps"]}
        self.assertEqual(steps["each"]["foreach"], "start/_foreach.json")
        self.assertNotIn("join", steps["each"])
        self.assertIs(steps["a"]["join"], False)
        self.assertIs(steps["ab"]["join"], False)  # a static join inside the foreach level
        self.assertIs(steps["after"]["join"], False)
        self.assertIs(steps["fold"]["join"], True)
        self.assertNotIn("join", steps["loop"])
        self.assertEqual(steps["loop"]["switch"], {"cases": {"again": "loop", "done": "end"}, "max_iterations": 1000})
        self.assertEqual(steps["loop"]["needs"], ["fold"])
        self.assertIn("--loop-from loop", steps["loop"]["run"])
        self.assertIn("--join foreach", steps["fold"]["run"])
        self.assertEqual(steps["each"]["retry"], {"attempts": 3, "backoff": "60s", "max_backoff": "60s"})
        self.assertEqual(steps["a"]["timeout"], "3605s")
        self.assertEqual(steps["b"]["resources"], {"cpu": 2, "memory": "1024Mi", "gpu": 1})
        self.assertEqual(doc["triggers"], [{"cron": "@daily"}, {"signal": "data_landed"}])
        self.assertTrue(steps["start"]["run"].startswith("cd /tmp && exec /usr/bin/python3 "))

    def test_flow_names(self):
        self.assertEqual(baton_flow_name("HelloFlow"), "hello_flow")
        self.assertEqual(baton_flow_name("Squares"), "squares")
        self.assertEqual(baton_flow_name("MLPipeline2"), "ml_pipeline2")


if __name__ == "__main__":
    unittest.main()
