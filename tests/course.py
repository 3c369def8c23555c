"""course - the stages of the course and what each says of itself, read from stages.txt and each stage's
stage.ini (what it promises, its steps), starter.ini (the stubs of its steps) and mistakes.ini (the mistakes
its steps must catch). The pytest harness (tests/conftest.py) and scripts/steps.py read the stages through this
module alone, so one class, Stage, means one thing everywhere."""

import configparser
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The keys of [stage] that say what a stage does, yes or no; a harness test names one in needs(...).
PROMISES = ("concurrent", "graceful_shutdown", "timestamped_log", "limits", "live_client", "thread_per_client",
            "event_loop", "commands", "thread_pool", "tls", "browser")


def stage_paths():
    """The stages' folders, relative to the course, in order: stages.txt, the one list of them."""
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / "stages.txt").read_text().splitlines())
    return [line for line in lines if line]


def read_ini(path):
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # hint keys keep their case
    ini.read(path)
    return ini


def multiline(text):
    """A value written over several lines: a line that starts with "|" keeps what follows it as it is."""
    lines = [line[2:] if line.startswith("| ") else line[1:] if line.startswith("|") else line
             for line in text.strip("\n").splitlines()]
    return "\n".join(lines)


@dataclass
class Step:
    """One step of a stage: what the student writes, and what checks it."""

    number: int
    name: str
    title: str
    code: dict  # file name -> [function names]
    checks: list  # Check suites, "suite" or "suite:case"
    tests: list  # harness tests, "test_file.py::test_name"
    lint: list  # source checks, "check file:name" (scripts/steps.py LINTS)
    build: str  # "linux", or "wine" for a Win32 twin
    sanitize: str  # "thread": the step's tests also run on a ThreadSanitizer build of the copy; "" otherwise
    readme: str  # the README section a failure sends the student to
    hints: dict  # failure kind -> hint; "" is the default

    def label(self, count):
        return f"step {self.number}/{count}  {self.title}"

    def hint_for(self, kind):
        return self.hints.get(kind) or self.hints.get("")

    def owns(self, file_name, function):
        return function in self.code.get(file_name, [])


@dataclass
class Edit:
    file: str
    find: str
    replace: str


@dataclass
class Mistake:
    """A small patch a student could make to the stage's code: the step that must catch it, and a text its failure
    must show (a hint, an error's words)."""

    name: str
    step: str
    what: str
    edits: list
    shows: str


@dataclass
class Stage:
    """One stage: what it promises (its [stage] keys), its steps, their stubs and the mistakes they catch."""

    path: Path
    reply_text: str
    concurrent: bool
    graceful_shutdown: bool
    timestamped_log: bool
    limits: bool
    live_client: bool  # the client prints what the server sends as it arrives, until the server closes
    thread_per_client: bool  # each client has a thread of its own
    event_loop: bool  # one thread and a poller serve every client
    commands: bool  # requests are commands in RESP (lesson 05 on), not lines that get the same reply
    thread_pool: bool  # slow commands run on worker threads, off the event loop (lesson 06 on)
    tls: bool  # a TLS port beside the plain one, and a client that speaks TLS (lesson 07 on)
    browser: bool  # the page over HTTP and WebSocket (--http-port, --https-port), for a browser (lesson 08 on)
    new: tuple  # the stage.ini keys this stage adds; "basics" for the first stage
    changes: list = field(default_factory=list)  # the files that differ from the stage before
    steps: list = field(default_factory=list)
    stubs: dict = field(default_factory=dict)  # (file, function) -> {"todo": ..., "stub": ...}
    mistakes: list = field(default_factory=list)
    programs: Path = None  # where server and client are: the stage itself, or a student's copy (IMPL)

    @property
    def name(self):
        return self.path.name

    @property
    def lesson(self):
        """What LESSON= calls it: "01", ..., or "final"."""
        return "final" if self.name == "final" else self.name.split("-")[0]

    @property
    def counted(self):
        """What the log counts per client and in its summary: an event loop's driver counts requests (a line is
        one), whatever its protocol; a thread per client counts lines."""
        return "requests" if self.event_loop else "lines"

    def reply(self, line):
        """The bytes the server must send for one line (given without its end)."""
        if self.reply_text == "echo":
            return line + b"\n"
        return self.reply_text.encode() + b"\n"

    def step_named(self, name):
        return next(step for step in self.steps if step.name == name)

    def step_owning(self, file_name, function):
        """The step whose code has this function, or None: code that is given."""
        return next((step for step in self.steps if step.owns(file_name, function)), None)

    @classmethod
    def load(cls, path, programs=None):
        path = (ROOT / path).resolve() if not Path(path).is_absolute() else Path(path)
        ini = read_ini(path / "stage.ini")
        section = ini["stage"]
        promises = {key: section.getboolean(key, fallback=False) for key in PROMISES}
        promises["thread_per_client"] = section.getboolean("thread_per_client", fallback=promises["concurrent"])
        stage = cls(path=path, reply_text=section.get("reply"), new=tuple(section.get("new", "").split()),
                    changes=section.get("changes", "").split(), programs=Path(programs) if programs else path,
                    **promises)
        stage.steps = [load_step(ini, number, name) for number, name in
                       enumerate(section.get("steps", "").split(), start=1)]
        starter = read_ini(path / "starter.ini")
        for name in starter.sections():
            file_name, function = name.split()
            stage.stubs[(file_name, function)] = {"todo": starter[name].get("todo", "").replace("\n", " "),
                                                  "stub": starter[name]["stub"]}
        mistakes = read_ini(path / "mistakes.ini")
        for name in mistakes.sections():
            entry = mistakes[name]
            edits = []
            for suffix in [""] + [f".{n}" for n in range(2, 10)]:
                if f"edit{suffix}" in entry:
                    edits.append(Edit(entry[f"edit{suffix}"].strip(), multiline(entry[f"find{suffix}"]),
                                      multiline(entry.get(f"replace{suffix}", ""))))
            stage.mistakes.append(Mistake(name.removeprefix("mistake ").strip(), entry["step"].strip(),
                                          " ".join(entry.get("what", "").split()), edits,
                                          " ".join(entry.get("shows", "").split())))
        return stage


def load_step(ini, number, name):
    section = ini[f"step {name}"]
    code, file_name = {}, None
    for line in section.get("code", "").strip().splitlines():
        if ":" in line:  # "file.c: function function", or more functions of the same file
            file_name, _, line = line.partition(":")
            file_name = file_name.strip()
        code.setdefault(file_name, []).extend(line.split())
    hints = {key[len("hint."):] if key.startswith("hint.") else "": " ".join(value.split())
             for key, value in section.items() if key == "hint" or key.startswith("hint.")}
    title = section["title"]
    return Step(number, name, title, code, section.get("check", "").split(), section.get("tests", "").split(),
                [line.strip() for line in section.get("lint", "").strip().splitlines() if line.strip()],
                section.get("build", "linux"), section.get("sanitize", ""), section.get("readme", f"Step {number}: {title}"),
                hints)


def load_selected(names, programs=None):
    """The stages to test: their folders' names (COURSE_STAGES), or every stage."""
    return [Stage.load(ROOT / name, programs) for name in (names or stage_paths())]
