import json
import os
import pickle
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import task_flows  # noqa: E402

from baton.errors import MergeArtifactsException  # noqa: E402
from baton.task import run_task  # noqa: E402


def put(d, name, value):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        pickle.dump(value, f)


def get(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return pickle.load(f)


class TaskTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.inp = os.path.join(self.tmp.name, "in")
        self.out = os.path.join(self.tmp.name, "out")
        os.makedirs(self.inp)
        os.makedirs(self.out)
        self.env = dict(os.environ)
        os.environ.update({"BATON_INPUT_DIR": self.inp, "BATON_OUTPUT_DIR": self.out, "BATON_ATTEMPT": "1"})
        for k in ("BATON_FOREACH_INDEX", "BATON_ITERATION"):
            os.environ.pop(k, None)

    def tearDown(self):
        os.environ.clear()
        os.environ.update(self.env)
        self.tmp.cleanup()

    def run_step(self, argv):
        return run_task(task_flows.T(use_cli=False), argv)

    def test_lazy_inputs_and_outputs(self):
        d = os.path.join(self.inp, "join")
        put(d, "a.pkl", 41)
        with open(os.path.join(d, "untouched.pkl"), "wb") as f:
            f.write(b"not a pickle: loading it would fail")
        self.assertEqual(self.run_step(["end", "--parents", "join"]), 0)
        self.assertEqual(get(self.out, "c.pkl"), 42)
        self.assertEqual(get(self.out, "a.pkl"), 41)
        # Never unpickled, passed on as is.
        with open(os.path.join(self.out, "untouched.pkl"), "rb") as f:
            self.assertEqual(f.read(), b"not a pickle: loading it would fail")
        with open(os.path.join(self.out, "case")) as f:
            self.assertEqual(f.read(), "go")

    def test_foreach_parent_and_child(self):
        self.assertEqual(self.run_step(["start"]), 0)
        with open(os.path.join(self.out, "_foreach.json")) as f:
            self.assertEqual(json.load(f), [0, 1, 2])
        # The child: the parent's outputs are its inputs.
        os.rename(self.out, os.path.join(self.inp, "start"))
        os.makedirs(self.out)
        put(os.path.join(self.inp, "start"), "a.pkl", "A")
        os.environ["BATON_FOREACH_INDEX"] = "1"
        self.assertEqual(self.run_step(["each", "--parents", "start", "--foreach", "items"]), 0)
        self.assertEqual(get(self.out, "got.pkl"), ("y", 1, "A"))
        stack = get(self.out, "_foreach_stack.pkl")
        self.assertEqual([(f["var"], f["index"], f["num_splits"], f["value"]) for f in stack], [("items", 1, 3, "y")])

    def join_inputs(self, values):
        for i, v in enumerate(values):
            d = os.path.join(self.inp, "each", str(i))
            for k, x in v.items():
                put(d, k + ".pkl", x)
            put(d, "_foreach_stack.pkl", [{"var": "items", "index": i, "num_splits": len(values), "value": i}])

    def test_merge_artifacts(self):
        self.join_inputs([{"same": 1, "diff": 1}, {"same": 1, "diff": 2}, {"same": 1, "diff": 3, "only": 9}])
        task_flows.T.exclude_for_test = ["diff"]
        self.assertEqual(self.run_step(["join", "--parents", "each", "--join", "foreach"]), 0)
        self.assertEqual(get(self.out, "same.pkl"), 1)
        self.assertEqual(get(self.out, "only.pkl"), 9)
        self.assertFalse(os.path.exists(os.path.join(self.out, "diff.pkl")))
        self.assertFalse(os.path.exists(os.path.join(self.out, "_foreach_stack.pkl")))

    def test_merge_conflict(self):
        self.join_inputs([{"diff": 1}, {"diff": 2}])
        task_flows.T.exclude_for_test = []
        with self.assertRaises(MergeArtifactsException) as cm:
            self.run_step(["join", "--parents", "each", "--join", "foreach"])
        self.assertEqual(cm.exception.artifact_names, ["diff"])
        self.assertIn("Step *join* cannot merge", str(cm.exception))

    def test_catch(self):
        self.assertEqual(self.run_step(["boom"]), 0)
        err = get(self.out, "err.pkl")
        self.assertIn("KeyError", err.type)
        self.assertIn("bad", err.exception)


if __name__ == "__main__":
    unittest.main()
