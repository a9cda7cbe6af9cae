"""The client read against real runs: an example flow is run with the
baton binary ($BATON_BIN) in a fresh home, then read back. Skipped when
BATON_BIN is not set (the Go test TestPythonUnit sets it)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))

import baton  # noqa: E402
from baton import BatonClientError, Flow, Run, namespace  # noqa: E402
from baton.client import _decode  # noqa: E402


class DecodeTest(unittest.TestCase):
    def test_decode_by_name(self):
        import pickle
        self.assertEqual(_decode("x.pkl", pickle.dumps({"a": 1})), {"a": 1})
        self.assertEqual(_decode("m.json", b'{"k": [1, 2]}'), {"k": [1, 2]})
        self.assertEqual(_decode("g.txt", b"hi\n"), b"hi\n")

    def test_namespace_is_a_no_op(self):
        self.assertIsNone(namespace(None))
        self.assertIsNone(namespace("user:someone"))

    def test_client_is_loaded_lazily(self):
        # A task imports baton: the client (and subprocess) must not come with it.
        code = "import sys, baton; print('baton.client' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python")),
                             universal_newlines=True, check=True).stdout
        self.assertEqual(out.strip(), "False")
        self.assertIs(baton.Flow, Flow)


@unittest.skipUnless(os.environ.get("BATON_BIN"), "BATON_BIN is not set: no baton binary to run flows with")
class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.saved = {k: os.environ.get(k) for k in ("BATON_HOME", "BATON_DB")}
        os.environ["BATON_HOME"] = os.path.join(cls.tmp, "home")
        os.environ.pop("BATON_DB", None)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), PYTHONDONTWRITEBYTECODE="1")

        def run(args):
            p = subprocess.run(args, cwd=cls.tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            if p.returncode != 0:
                raise AssertionError("%s: exit %d\n%s" % (args, p.returncode, p.stdout))

        squares = os.path.join(ROOT, "examples", "python", "squares.py")
        run([sys.executable, squares, "run", "--n", "3", "--no-progress"])
        run([sys.executable, squares, "run", "--n", "5", "--no-progress"])
        run([os.environ["BATON_BIN"], "run", os.path.join(ROOT, "examples", "hello", "hello.yaml"),
             "--param", 'names=["Ada","Alan"]', "--no-progress"])

    @classmethod
    def tearDownClass(cls):
        for k, v in cls.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_latest_run_and_its_data(self):
        run = Flow("Squares").latest_run
        self.assertEqual(run.pathspec, "Squares/%s" % run.id)
        self.assertTrue(run.successful)
        self.assertTrue(run.finished)
        self.assertEqual(run.data.total, 0 + 1 + 4 + 9 + 16)
        self.assertEqual(Flow("Squares").latest_successful_run.id, run.id)

    def test_runs_newest_first(self):
        runs = list(Flow("Squares"))
        self.assertEqual(len(runs), 2)
        self.assertGreater(int(runs[0].id), int(runs[1].id))
        self.assertEqual([r.data.total for r in runs], [30, 5])
        # The baton flow name reads the same runs.
        self.assertEqual([r.id for r in Flow("squares")], [r.id for r in runs])

    def test_steps_tasks_and_logs(self):
        rid = Flow("Squares").latest_run.id
        run = Run("Squares/%s" % rid)
        tasks = run["square"].tasks()
        self.assertEqual([t.data.sq for t in tasks], [0, 1, 4, 9, 16])
        self.assertEqual(tasks[3].pathspec, "Squares/%s/square/3" % rid)
        join = run["join"].task
        self.assertEqual(join.data.total, 30)
        self.assertEqual(join["total"].data, 30)
        self.assertIn("total", join)
        self.assertNotIn("_foreach_stack", tasks[0])
        # squares.py's end step prints the flow name, run id and total.
        self.assertEqual(run["end"].task.stdout, "Squares %s 30\n" % rid)
        self.assertEqual(run["end"].task.stderr, "")
        with self.assertRaises(KeyError):
            run["nosuch"]
        with self.assertRaises(AttributeError):
            join.data.nosuch

    def test_yaml_flow(self):
        run = Flow("hello").latest_run
        self.assertTrue(run.successful)
        # A YAML flow's artifacts: bytes, or parsed JSON for .json files.
        self.assertEqual(run["start"].task.data["names.json"], ["Ada", "Alan"])
        self.assertEqual(run["start"].task.data.names, ["Ada", "Alan"])
        self.assertEqual(run["greet"].tasks()[1]["greeting.txt"].data, b"Hello, Alan!\n")
        # No end step: data is the last step's.
        self.assertEqual(run.data.greetings, b"Hello, Ada!\nHello, Alan!\n")

    def test_errors(self):
        self.assertIsNone(Flow("NoSuchFlow").latest_run)
        with self.assertRaises(BatonClientError):
            Run("Squares/999")
        with self.assertRaises(BatonClientError):
            Run("hello/%s" % Flow("Squares").latest_run.id)


if __name__ == "__main__":
    unittest.main()
