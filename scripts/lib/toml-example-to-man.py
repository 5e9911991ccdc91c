"""controller.toml.example -> controller.toml(5): the file's header becomes DESCRIPTION,
each [section] a subsection, each commented-out `#key = default` line an entry whose text
is the comment block above it."""
import re
import sys


def roff(text):
    return text.replace("\\", "\\e").replace("-", "\\-")


def main(path):
    lines = open(path).read().split("\n")
    out = [".TH CONTROLLER.TOML 5 \"\" \"multiverse-controller\" \"File formats\"",
           ".SH NAME", "controller.toml \\- configuration of multiverse\\-controllerd",
           ".SH SYNOPSIS", "/etc/multiverse/controller.toml", ".SH DESCRIPTION"]
    i = 0
    # header: comment lines up to the first section
    para = []
    while i < len(lines) and not lines[i].startswith("["):
        line = lines[i]
        if line.startswith("#"):
            text = line[1:].strip()
            if i == 0:
                i += 1
                continue
            if not text:
                if para:
                    out.append(roff(" ".join(para)))
                    out.append(".PP")
                    para = []
            elif line.startswith("#   "):
                if para:
                    out.append(roff(" ".join(para)))
                    para = []
                out += [".RS", ".nf", roff(text), ".fi", ".RE"]
            else:
                para.append(text)
        i += 1
    if para:
        out.append(roff(" ".join(para)))
    comment = []
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\[(\w+)\]$", line)
        key = re.match(r"^#([a-z_]+) = (.*)$", line)
        if m:
            out += [".SH \"[%s]\"" % m.group(1)]
            comment = []
        elif key:
            out += [".TP", "\\fB%s\\fR = %s" % (roff(key.group(1)), roff(key.group(2)))]
            out.append(roff(" ".join(c for c in comment if c)) or "(no description)")
            comment = []
        elif line.startswith("#"):
            comment.append(line[1:].strip())
        elif not line.strip():
            pass
        i += 1
    out += [".SH SEE ALSO", "\\fBmultiverse\\-controllerd\\fR(8), \\fBmvctl\\fR(1), \\fBorg.multiverse.Controller\\fR(5)"]
    print("\n".join(out))


main(sys.argv[1])
