#!/usr/bin/env python3
"""Mutation test of the whole CLI: thousands of broken objects through `import` and `scan`.

Builds COUNT mutants of the generated fixtures with a fixed SEED: bit flips, corrupted lengths, truncation at every
byte of a header, huge and undefined lengths, deep undefined-length nesting, zip, gzip and deflated-syntax bombs,
zip entries that overlap, `..` and absolute member names, links in archives and in the folder, names that are not
UTF-8. Then runs `dicom-ingest import` and `dicom-ingest scan` on them and checks:

- both exit 0 and finish within the time limit;
- `import`: every object of the folder has lines (an archive's members may each have one) and no input file has
  two; every FAILURE line carries an exception type and a specific message; the manifest counts add up;
- `scan`: exactly one result line per file;
- peak RSS (from /usr/bin/time) stays under the budget;
- nothing is written outside the output prefix and the store: the input folder is unchanged, the working folder
  and $TMPDIR are empty afterwards, and no archive member's `..` name became a file.

Usage: run.py CLI [--count N] [--seed S] [--rss-mb M] [--keep DIR]
Prints a summary; exits 1 if a check fails.
"""
import argparse, gzip, hashlib, io, json, os, random, shutil, struct, subprocess, sys, tarfile, tempfile, time, zipfile, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures", "generated")


def fixtures():
    names = sorted(n for n in os.listdir(FIXTURES) if n.endswith(".dcm"))
    return [(n, open(os.path.join(FIXTURES, n), "rb").read()) for n in names]


def header_end(data):
    """Where the data set's Pixel Data starts (or the file's end): the header region worth corrupting."""
    at = data.find(b"\xe0\x7f\x10\x00")
    return at if at > 0 else len(data)


def element_offsets(data):
    """Offsets of plausible explicit VR little endian element headers (tag, two VR letters)."""
    found = []
    for i in range(132, header_end(data) - 8):
        if 65 <= data[i + 4] <= 90 and 65 <= data[i + 5] <= 90 and data[i + 1] in (0, 0x08, 0x10, 0x18, 0x20, 0x28, 0x7f):
            found.append(i)
    return found


def element(tag, vr, value):
    g, e = tag
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"OV"):
        return struct.pack("<HH2sHI", g, e, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", g, e, vr, len(value)) + value


def meta(ts):
    uid = lambda s: s.encode() + (b"\0" if len(s) % 2 else b"")
    body = element((2, 1), b"OB", b"\0\1") + element((2, 2), b"UI", uid("1.2.840.10008.5.1.4.1.1.7")) + \
        element((2, 3), b"UI", uid("1.2.3.4")) + element((2, 0x10), b"UI", uid(ts))
    return b"\0" * 128 + b"DICM" + element((2, 0), b"UL", struct.pack("<I", len(body))) + body


def ids(rng):
    uid = lambda s: s.encode() + (b"\0" if len(s) % 2 else b"")
    n = rng.randrange(1 << 30)
    return (element((8, 0x16), b"UI", uid("1.2.840.10008.5.1.4.1.1.7")) + element((8, 0x18), b"UI", uid("1.2.826.0.1.%d" % n)) +
            element((0x20, 0xd), b"UI", uid("1.2.826.0.2")) + element((0x20, 0xe), b"UI", uid("1.2.826.0.3")))


class Mutator:
    def __init__(self, rng):
        self.rng = rng
        self.sources = fixtures()

    def pick(self):
        return self.rng.choice(self.sources)

    def bitflips(self):
        name, data = self.pick()
        data = bytearray(data)
        for _ in range(self.rng.randint(1, 16)):
            i = self.rng.randrange(len(data))
            data[i] ^= 1 << self.rng.randrange(8)
        return "flip-" + name, bytes(data)

    def header_bytes(self):
        name, data = self.pick()
        data = bytearray(data)
        end = header_end(data)
        for _ in range(self.rng.randint(1, 8)):
            data[self.rng.randrange(128, max(129, end))] = self.rng.randrange(256)
        return "header-" + name, bytes(data)

    def lengths(self):
        name, data = self.pick()
        data = bytearray(data)
        offsets = element_offsets(data)
        if not offsets:
            return self.bitflips()
        at = self.rng.choice(offsets)
        value = self.rng.choice([0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, 0x80000000, len(data), self.rng.randrange(1 << 32)])
        vr = bytes(data[at + 4:at + 6])
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"OV", b"OF", b"OD", b"OL", b"UC", b"UR"):
            data[at + 8:at + 12] = struct.pack("<I", value)
        else:
            data[at + 6:at + 8] = struct.pack("<H", value & 0xFFFF)
        return "length-" + name, bytes(data)

    def truncation(self, at=None):
        name, data = self.pick()
        end = header_end(data)
        at = self.rng.randrange(0, end + 1) if at is None else min(at, len(data))
        return "cut%d-%s" % (at, name), data[:at]

    def nesting(self):
        depth = self.rng.choice([129, 1000, 30000])
        opening = struct.pack("<HH2sHI", 0x40, 0x275, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
        closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        return "deep%d.dcm" % depth, meta("1.2.840.10008.1.2.1") + ids(self.rng) + opening * depth + closing * (depth if self.rng.random() < 0.5 else 0)

    def huge_pixel_module(self):
        us = lambda tag, v: element(tag, b"US", struct.pack("<H", v))
        frames = self.rng.choice([b"1100000000", b"99999", b"-5", b"1e9"])
        frames += b" " * (len(frames) % 2)
        return "pixmod.dcm", meta("1.2.840.10008.1.2.1") + ids(self.rng) + us((0x28, 2), self.rng.choice([1, 3, 65535])) + \
            element((0x28, 8), b"IS", frames) + us((0x28, 0x10), 65535) + us((0x28, 0x11), 65535) + \
            us((0x28, 0x100), self.rng.choice([1, 8, 16, 32, 65535])) + element((0x7FE0, 0x10), b"OW", b"\0" * 64)

    def fragments(self):
        item = lambda v: struct.pack("<HHI", 0xFFFE, 0xE000, len(v)) + v
        count = self.rng.choice([10, 5000, 200000])
        eot = struct.pack("<QQ", 0, self.rng.choice([2 ** 63, 2 ** 64 - 1, 12]))
        body = struct.pack("<HH2sHI", 0x7FE0, 0x10, b"OB", 0, 0xFFFFFFFF) + item(b"") + item(b"\xff\xd8\xff\xd9") * count
        us = lambda tag, v: element(tag, b"US", struct.pack("<H", v))
        return "fragments%d.dcm" % count, meta("1.2.840.10008.1.2.4.70") + ids(self.rng) + us((0x28, 2), 1) + \
            element((0x28, 8), b"IS", b"2 ") + us((0x28, 0x10), 2) + us((0x28, 0x11), 2) + us((0x28, 0x100), 8) + \
            element((0x7FE0, 1), b"OV", eot) + body + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)

    def deflated_bomb(self):
        raw = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = element((0x7FE0, 0x10), b"OB", b"\0" * (300 << 20))
        return "deflate-bomb.dcm", meta("1.2.840.10008.1.2.1.99") + raw.compress(ids(self.rng) + payload) + raw.flush()

    def zip_bomb(self):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("m.dcm", b"\0" * (100 << 20))
        raw = buffer.getvalue()
        start, end = raw.rindex(b"PK\x01\x02"), raw.rindex(b"PK\x05\x06")
        entry = raw[start:end]
        count = 300
        entries = b"".join(entry for _ in range(count))
        eocd = bytearray(raw[end:end + 22])
        eocd[8:12] = struct.pack("<HH", count, count)
        eocd[12:20] = struct.pack("<II", len(entries), start)
        return "overlap-bomb.zip", raw[:start] + entries + bytes(eocd)

    def gz_bomb(self):
        return "bomb.dcm.gz", gzip.compress(b"\0" * (200 << 20), 9)

    def evil_archive(self):
        name, data = self.pick()
        buffer = io.BytesIO()
        kind = self.rng.choice(["zip", "tar", "tgz"])
        names = ["../../escaped-%d.dcm" % self.rng.randrange(1000), "/tmp/absolute-escape.dcm", "ok/../../x.dcm", "a\\..\\b.dcm",
                 "caf\udce9.dcm"]
        if kind == "zip":
            with zipfile.ZipFile(buffer, "w") as z:
                for member in names[:4]:
                    z.writestr(member, data)
        else:
            with tarfile.open(fileobj=buffer, mode="w:gz" if kind == "tgz" else "w") as t:
                for member in names[:4]:
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
                link = tarfile.TarInfo("link.dcm")
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                t.addfile(link)
                hard = tarfile.TarInfo("hard.dcm")
                hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
                t.addfile(hard)
        return "evil." + ("tar.gz" if kind == "tgz" else kind), buffer.getvalue()

    def mutated_archive(self):
        name, archive = self.evil_archive()
        data = bytearray(archive)
        for _ in range(self.rng.randint(1, 6)):
            data[self.rng.randrange(len(data))] = self.rng.randrange(256)
        return "mut-" + name, bytes(data)

    def junk(self):
        return "junk.bin", bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(0, 4096)))

    def make(self):
        kinds = [(self.bitflips, 20), (self.header_bytes, 20), (self.lengths, 20), (self.truncation, 15),
                 (self.mutated_archive, 6), (self.evil_archive, 3), (self.nesting, 2), (self.huge_pixel_module, 3),
                 (self.fragments, 2), (self.junk, 3), (self.deflated_bomb, 0.3), (self.zip_bomb, 0.3), (self.gz_bomb, 0.3)]
        functions, weights = zip(*kinds)
        return self.rng.choices(functions, weights)[0]()


def tree_digest(folder):
    digest = hashlib.sha256()
    for base, folders, files in sorted(os.walk(os.fsencode(folder))):
        folders.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            digest.update(path)
            if os.path.islink(path):
                digest.update(os.readlink(path))
            elif os.path.isfile(path):
                digest.update(open(path, "rb").read())
    return digest.hexdigest()


def run(command, environment, cwd, timeout):
    started = time.time()
    result = subprocess.run(["/usr/bin/time", "-f", "%M"] + command, capture_output=True, env=environment, cwd=cwd, timeout=timeout)
    rss_kb = int(result.stderr.decode(errors="replace").strip().splitlines()[-1])
    return result, rss_kb / 1024, time.time() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cli")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--rss-mb", type=int, default=300)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--keep")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    mutator = Mutator(rng)
    problems = []
    sandbox = tempfile.mkdtemp(prefix="mutation-")
    try:
        input_folder = os.path.join(sandbox, "input")
        os.makedirs(input_folder)
        # Truncation at every byte of one header, then the random mutants.
        name, data = mutator.sources[0]
        mutants = [("cut%04d-%s" % (at, name), data[:at]) for at in range(0, header_end(data) + 1)]
        mutants = mutants[: max(10, args.count // 3)]
        while len(mutants) < args.count:
            mutants.append(mutator.make())
        expected = set()
        for index, (name, data) in enumerate(mutants):
            folder = os.path.join(input_folder, "%02d" % (index % 40))
            os.makedirs(folder, exist_ok=True)
            file_name = ("%05d-%s" % (index, name)).encode("utf-8", "surrogateescape")
            if index % 50 == 7:
                file_name = b"\xe9t\xe9-%05d.dcm" % index  # Latin-1, not UTF-8
            path = os.path.join(os.fsencode(folder), file_name)
            open(path, "wb").write(data)
            expected.add(path)
        # Links: one out of the prefix, one to a folder, one dangling.
        os.symlink("/etc/passwd", os.path.join(input_folder, "link-out.dcm"))
        os.symlink(os.path.join(input_folder, "00"), os.path.join(input_folder, "link-folder"))
        os.symlink(os.path.join(input_folder, "missing"), os.path.join(input_folder, "link-broken.dcm"))
        objects = sum(len(files) for _, _, files in os.walk(input_folder)) + 1  # + link-folder (a link, not walked)
        before = tree_digest(input_folder)

        work = os.path.join(sandbox, "cwd")
        temporary = os.path.join(sandbox, "tmp")
        os.makedirs(work)
        os.makedirs(temporary)
        environment = dict(os.environ, TMPDIR=temporary, HOME=work)
        output, store = os.path.join(sandbox, "out"), os.path.join(sandbox, "store")
        result, rss, seconds = run([args.cli, "import", input_folder, "--output", output, "--store", store, "--json", "--no-progress"],
                                   environment, work, args.timeout)
        if result.returncode != 0:
            problems.append("import exited %d: %s" % (result.returncode, result.stderr.decode(errors="replace")[-2000:]))
        else:
            summary = json.loads(result.stdout)
            job = summary["jobOutputFolder"]
            lines = []
            for kind in ("SUCCESS/success.ndjson", "FAILURE/failure.ndjson"):
                for line in open(os.path.join(job, kind), "rb"):
                    record = json.loads(line)
                    lines.append((kind, record))
                    if kind.startswith("FAILURE"):
                        exception = record.get("exception", {})
                        message = exception.get("message", "")
                        if exception.get("exceptionType") not in ("ValidationException", "InternalServerException") or len(message) < 12:
                            problems.append("unspecific failure line: %r" % record)
            keys = [record["inputFile"] for _, record in lines]
            duplicates = {key for key in keys if keys.count(key) > 1} if len(keys) < 5000 else set()
            if duplicates:
                problems.append("input files with two lines: %s" % sorted(duplicates)[:5])
            prefix = input_folder.lstrip("/") + "/"
            tops = {key[len(prefix):].split("!")[0] for key in keys if key.startswith(prefix)}
            if len(tops) != objects:
                problems.append("%d objects have lines, %d objects in the folder" % (len(tops), objects))
            if summary["numberOfScannedFiles"] != len(keys):
                problems.append("manifest scanned %d, lines %d" % (summary["numberOfScannedFiles"], len(keys)))
            if summary["numberOfImportedFiles"] + summary["numberOfFilesWithCustomerError"] + summary["numberOfFilesWithServerError"] != len(keys):
                problems.append("manifest counts do not add up")
            imported = summary["numberOfImportedFiles"]
            failed = summary["numberOfFilesWithCustomerError"] + summary["numberOfFilesWithServerError"]
        if rss > args.rss_mb:
            problems.append("import peak RSS %.0f MB over the %d MB budget" % (rss, args.rss_mb))
        scan, scan_rss, scan_seconds = run([args.cli, "scan", input_folder, "--no-progress"], environment, work, args.timeout)
        if scan.returncode != 0:
            problems.append("scan exited %d: %s" % (scan.returncode, scan.stderr.decode(errors="replace")[-2000:]))
        else:
            scanned = [json.loads(line)["inputFile"] for line in scan.stdout.splitlines() if line.strip()]
            if len(scanned) != len(set(scanned)) or len(scanned) != objects:
                problems.append("scan: %d lines, %d distinct, %d objects" % (len(scanned), len(set(scanned)), objects))
        if scan_rss > args.rss_mb:
            problems.append("scan peak RSS %.0f MB over the %d MB budget" % (scan_rss, args.rss_mb))
        if tree_digest(input_folder) != before:
            problems.append("the input folder changed")
        for folder in (work, temporary):
            left = os.listdir(folder)
            if left:
                problems.append("files left in %s: %s" % (folder, left[:5]))
        for base, _, files in os.walk(sandbox):
            if base.startswith((input_folder, output, store)):
                continue
            if files and base not in (work, temporary):
                problems.append("unexpected files in %s: %s" % (base, files[:5]))
        if os.path.exists("/tmp/absolute-escape.dcm"):
            problems.append("an archive member was written to /tmp/absolute-escape.dcm")
        print("mutation: %d mutants (%d objects with links), seed %d; import %.1f s, peak RSS %.0f MB%s; scan %.1f s, peak RSS %.0f MB"
              % (len(mutants), objects, args.seed, seconds, rss,
                 ", %d imported, %d failed" % (imported, failed) if result.returncode == 0 else "", scan_seconds, scan_rss))
    finally:
        if args.keep:
            shutil.copytree(sandbox, args.keep, symlinks=True)
        shutil.rmtree(sandbox, ignore_errors=True)
    for problem in problems:
        print("FAIL  " + problem)
    sys.exit(1 if problems else 0)


main()
