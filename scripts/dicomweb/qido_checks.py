"""QIDO-RS checks for wado_e2e.py: a search corpus of its own (three studies, five series, nine instances with the
attributes the query keys match), imported with the WADO fixtures, then searched at every level and path through
dicomweb-client and plain requests, each answer compared with a brute-force filter of the source data sets.

Checked: every query key of ../shared/spec/dicomweb.md §3 (exact, wildcards, UID lists, date and time ranges,
fuzzymatching), keys given by tag, the orders (series by SeriesNumber, instances by InstanceNumber, missing
numbers last), limit/offset paging, the computed attributes, RetrieveURL, includefield (columns, stored
attributes, `all`), imageSetId reaching a non-primary image set, the refusals, and that an update and a deletion
of image sets show in the next search.
"""
import copy
import fnmatch
import json
import os

import pydicom
from pydicom.uid import generate_uid

from e2e_common import check, fixture, seen

SC = "1.2.840.10008.5.1.4.1.1.7"

STUDIES = [
    dict(PatientName="Smith^Anna", PatientID="P-100", PatientBirthDate="19800101", StudyDate="20230310",
         StudyTime="083000", AccessionNumber="ACC-11", StudyDescription="HEAD CT", ReferringPhysicianName="House^Gregory",
         StudyID="S1", series=[
             dict(Modality="CT", SeriesNumber=2, SeriesDescription="Axial", instances=[3, 1, 2]),
             dict(Modality="PT", SeriesNumber=1, SeriesDescription="Whole body", instances=[1, 2], pps="20230310")]),
    dict(PatientName="smith^bob", PatientID="P-200", PatientBirthDate="19910203", StudyDate="20240105",
         StudyTime="141500.25", AccessionNumber="ACC-21", StudyDescription="Knee MR", ReferringPhysicianName="Wilson^James",
         StudyID="S2", series=[dict(Modality="MR", SeriesNumber=5, SeriesDescription="Sagittal", instances=[10, 9])]),
    dict(PatientName="Zhang^Wei", PatientID="P-300", PatientBirthDate="20000101", StudyDate="20251231",
         StudyTime="235959", AccessionNumber="XYZ-9", StudyDescription="Thorax", ReferringPhysicianName=None,
         StudyID="S3", series=[
             dict(Modality="CT", SeriesNumber=1, SeriesDescription="Scout", instances=[None]),
             dict(Modality="OT", SeriesNumber=None, SeriesDescription="Report", instances=[1], sop_class=SC)]),
]


def build_corpus(folder):
    """Writes the corpus into `folder`; returns {SOP Instance UID: data set}."""
    written = {}
    template = fixture("ct_explicit_le.dcm")
    for study in STUDIES:
        study_uid = generate_uid()
        for series in study["series"]:
            series_uid = generate_uid()
            for number in series["instances"]:
                dataset = copy.deepcopy(template)
                for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber",
                                "StudyDescription", "ReferringPhysicianName", "StudyID"):
                    if study[keyword] is None:
                        if keyword in dataset:
                            delattr(dataset, keyword)
                    else:
                        setattr(dataset, keyword, study[keyword])
                dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study_uid, series_uid
                dataset.Modality, dataset.SeriesDescription = series["Modality"], series["SeriesDescription"]
                for keyword, value in (("SeriesNumber", series["SeriesNumber"]), ("InstanceNumber", number)):
                    if value is None:
                        if keyword in dataset:
                            delattr(dataset, keyword)
                    else:
                        setattr(dataset, keyword, value)
                if "pps" in series:
                    dataset.PerformedProcedureStepStartDate, dataset.PerformedProcedureStepStartTime = series["pps"], "090000"
                if "sop_class" in series:
                    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = series["sop_class"]
                uid = generate_uid()
                dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = uid
                dataset.save_as(os.path.join(folder, f"qido_{uid}.dcm"), enforce_file_format=True)
                written[uid] = dataset
    return written


def text(dataset, keyword):
    value = dataset.get(keyword)
    return "" if value is None else str(value)


def values(answer, tag):
    element = answer.get(tag)
    if not element or "Value" not in element:
        return []
    return [item.get("Alphabetic", "") if isinstance(item, dict) else item for item in element["Value"]]


def first(answer, tag):
    found = values(answer, tag)
    return found[0] if found else None


class Searches:
    def __init__(self, client, session, base, primary, non_primary_id, conflict, cli, datastore, image_set_of_series, work):
        self.client, self.session, self.base, self.work = client, session, base, work
        self.primary = primary  # {sop: dataset} of the instances in primary image sets
        self.non_primary_id, self.conflict = non_primary_id, conflict
        self.cli, self.datastore, self.image_set_of_series = cli, datastore, image_set_of_series
        self.count = 0

    def get(self, path, params=None, expect=200):
        answer = self.session.get(self.base + path, params=params)
        check(answer.status_code == expect, f"GET {path[:200]} {params}: {answer.status_code} {answer.text[:300]}")
        return answer

    def uids(self, level, predicate, datasets=None):
        key = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID", "instance": "SOPInstanceUID"}[level]
        return {text(d, key) for d in (datasets or self.primary).values() if predicate(d)}

    def expect(self, level, path, params, predicate, what):
        tag = {"study": "0020000D", "series": "0020000E", "instance": "00080018"}[level]
        answer = self.get(path, params).json()
        got = [first(item, tag) for item in answer]
        wanted = self.uids(level, predicate)
        check(len(got) == len(set(got)), f"{what}: no match twice: {got}")
        check(set(got) == wanted, f"{what}: {sorted(got)} != {sorted(wanted)}")
        self.count += 1
        return answer

    def run(self):
        p = self.primary
        corpus_study = {s["StudyID"]: next(text(d, "StudyInstanceUID") for d in p.values() if text(d, "StudyID") == s["StudyID"])
                        for s in STUDIES}
        s1, s2, s3 = corpus_study["S1"], corpus_study["S2"], corpus_study["S3"]

        # Study level: every key, through dicomweb-client first.
        everything = self.client.search_for_studies()
        check({first(item, "0020000D") for item in everything} == self.uids("study", lambda d: True), "every study")
        for item in everything:
            study = first(item, "0020000D")
            members = [d for d in p.values() if text(d, "StudyInstanceUID") == study]
            check(first(item, "00201206") == len({text(d, "SeriesInstanceUID") for d in members}), f"{study}: series count")
            check(first(item, "00201208") == len(members), f"{study}: instance count")
            check(values(item, "00080061") == sorted({text(d, "Modality") for d in members}), f"{study}: modalities")
            check(first(item, "00100010") == text(members[0], "PatientName"), f"{study}: PatientName")
            check(first(item, "00080020") == text(members[0], "StudyDate"), f"{study}: StudyDate")
            url = first(item, "00081190")
            check(url == f"{self.base}/studies/{study}", f"{study}: RetrieveURL {url}")
        fuzzy = {"fuzzymatching": "true"}
        cases = [
            ({"PatientName": "Smith^Anna"}, lambda d: text(d, "PatientName") == "Smith^Anna"),
            ({"PatientName": "Smith*"}, lambda d: fnmatch.fnmatchcase(text(d, "PatientName"), "Smith*")),
            ({"PatientName": "?mith^*"}, lambda d: fnmatch.fnmatchcase(text(d, "PatientName"), "?mith^*")),
            ({"PatientName": "smi", **fuzzy}, lambda d: text(d, "PatientName").lower().startswith("smi")),
            ({"PatientName": "bo", **fuzzy}, lambda d: any(w.lower().startswith("bo") for w in text(d, "PatientName").split("^"))),
            ({"PatientName": "ith", **fuzzy}, lambda d: False),
            ({"PatientID": "P-300"}, lambda d: text(d, "PatientID") == "P-300"),
            ({"00100020": "P-100"}, lambda d: text(d, "PatientID") == "P-100"),
            ({"StudyDate": "20230310"}, lambda d: text(d, "StudyDate") == "20230310"),
            ({"StudyDate": "20240101-20251231"}, lambda d: "20240101" <= text(d, "StudyDate") <= "20251231"),
            ({"StudyDate": "-20231231"}, lambda d: "" < text(d, "StudyDate") <= "20231231"),
            ({"StudyDate": "20240106-"}, lambda d: text(d, "StudyDate") >= "20240106"),
            ({"StudyTime": "1400-1500"}, lambda d: "1400" <= text(d, "StudyTime") and text(d, "StudyTime")[:4] <= "1500"),
            ({"StudyTime": "-0830"}, lambda d: "" < text(d, "StudyTime") and text(d, "StudyTime")[:4] <= "0830"),
            ({"AccessionNumber": "ACC-?1"}, lambda d: fnmatch.fnmatchcase(text(d, "AccessionNumber"), "ACC-?1")),
            ({"ModalitiesInStudy": "PT"}, lambda d: text(d, "StudyInstanceUID") == s1),
            ({"ModalitiesInStudy": "MR"}, lambda d: any(text(o, "Modality") == "MR" and text(o, "StudyInstanceUID") == text(d, "StudyInstanceUID") for o in p.values())),
            ({"ModalitiesInStudy": "OT\\PT"}, lambda d: text(d, "StudyInstanceUID") in (s1, s3)),
            ({"StudyInstanceUID": f"{s1}\\{s3}"}, lambda d: text(d, "StudyInstanceUID") in (s1, s3)),
            ({"StudyDescription": "*CT*"}, lambda d: fnmatch.fnmatchcase(text(d, "StudyDescription"), "*CT*")),
            ({"ReferringPhysicianName": "House^Gregory"}, lambda d: text(d, "ReferringPhysicianName") == "House^Gregory"),
            ({"ReferringPhysicianName": "wil", **fuzzy}, lambda d: text(d, "ReferringPhysicianName").lower().startswith("wil")),
            ({"PatientBirthDate": "19800101"}, lambda d: text(d, "PatientBirthDate") == "19800101"),
            ({"StudyID": "S1"}, lambda d: text(d, "StudyID") == "S1"),
            ({"PatientID": "P-100", "StudyDate": "20230310"}, lambda d: text(d, "PatientID") == "P-100"),
            ({"PatientID": ""}, lambda d: True),
        ]
        for params, predicate in cases:
            self.expect("study", "/studies", params, predicate, f"studies {params}")
        filtered = self.client.search_for_studies(search_filters={"PatientName": "smith*"}, fuzzymatching=False)
        check({first(item, "0020000D") for item in filtered} == self.uids("study", lambda d: text(d, "PatientName").startswith("smith")),
              "dicomweb-client search_filters")

        # Study paging: pages of two cover every study once, newest update first across pages.
        paged = []
        for offset in range(0, 20, 2):
            page = self.client.search_for_studies(limit=2, offset=offset)
            paged += [first(item, "0020000D") for item in page]
            if len(page) < 2:
                break
        check(sorted(paged) == sorted(self.uids("study", lambda d: True)), f"study pages: {paged}")
        check(paged == [first(item, "0020000D") for item in everything], "pages follow the one order")

        # Series level, within a study and across.
        within = self.expect("series", f"/studies/{s1}/series", None, lambda d: text(d, "StudyInstanceUID") == s1, "S1's series")
        check([first(item, "00200011") for item in within] == [1, 2], "series by SeriesNumber")
        check([first(item, "00201209") for item in within] == [2, 3], "NumberOfSeriesRelatedInstances")
        check(all(first(item, "00081190").endswith(f"/studies/{s1}/series/{first(item, '0020000E')}") for item in within), "series RetrieveURL")
        metadata = self.session.get(first(within[0], "00081190") + "/metadata")
        check(metadata.status_code == 200 and len(metadata.json()) == 2, "a series' RetrieveURL + /metadata reads it")
        last = self.expect("series", f"/studies/{s3}/series", None, lambda d: text(d, "StudyInstanceUID") == s3, "S3's series")
        check([first(item, "00200011") for item in last] == [1, None], "a series without SeriesNumber comes last")
        series_cases = [
            ({"Modality": "CT"}, lambda d: text(d, "Modality") == "CT"),
            ({"PatientID": "P-100"}, lambda d: text(d, "PatientID") == "P-100"),
            ({"SeriesNumber": "5"}, lambda d: text(d, "SeriesNumber") == "5"),
            ({"SeriesInstanceUID": text(next(iter(d for d in p.values() if text(d, "StudyID") == "S2")), "SeriesInstanceUID")},
             lambda d: text(d, "StudyID") == "S2"),
            ({"PatientName": "zhang", **fuzzy}, lambda d: text(d, "PatientName") == "Zhang^Wei"),
        ]
        for params, predicate in series_cases:
            self.expect("series", "/series", params, predicate, f"series {params}")
        found = self.client.search_for_series(study_instance_uid=s2, search_filters={"Modality": "MR"})
        check(len(found) == 1 and first(found[0], "0008103E") == "Sagittal", "dicomweb-client series search")
        check(first(found[0], "00100020") == "P-200", "series answers carry the study's attributes")

        # Instance level at its three paths.
        a_series = next(text(d, "SeriesInstanceUID") for d in p.values() if text(d, "StudyID") == "S1" and text(d, "Modality") == "CT")
        ordered = self.expect("instance", f"/studies/{s1}/series/{a_series}/instances", None,
                              lambda d: text(d, "SeriesInstanceUID") == a_series, "series A's instances")
        check([first(item, "00200013") for item in ordered] == [1, 2, 3], "instances by InstanceNumber")
        check(all(first(item, "00280010") == 64 and first(item, "00080016") for item in ordered), "Rows and SOPClassUID")
        study_wide = self.expect("instance", f"/studies/{s1}/instances", None, lambda d: text(d, "StudyInstanceUID") == s1, "S1's instances")
        check([first(item, "00200013") for item in study_wide] == [1, 1, 2, 2, 3], "a study's instances by InstanceNumber")
        sc = next(u for u, d in p.items() if text(d, "SOPClassUID") == SC)
        others = [u for u, d in p.items() if text(d, "StudyID") == "S2"]
        instance_cases = [
            ({"SOPClassUID": SC}, lambda d: text(d, "SOPClassUID") == SC),
            ({"SOPInstanceUID": f"{sc}\\{others[0]}"}, lambda d: text(d, "SOPInstanceUID") in (sc, others[0])),
            ({"InstanceNumber": "10"}, lambda d: text(d, "InstanceNumber") == "10"),
            ({"PatientName": "smith^bob", "Modality": "MR"}, lambda d: text(d, "PatientName") == "smith^bob"),
            ({"PerformedProcedureStepStartDate": "20230301-20230331"},
             lambda d: "20230301" <= text(d, "PerformedProcedureStepStartDate") <= "20230331"),
            ({"SeriesNumber": "2", "StudyID": "S1"}, lambda d: text(d, "SeriesNumber") == "2" and text(d, "StudyID") == "S1"),
        ]
        for params, predicate in instance_cases:
            self.expect("instance", "/instances", params, predicate, f"instances {params}")
        pages = []
        for offset in range(0, 200, 7):
            page = self.get("/instances", {"limit": "7", "offset": str(offset)}).json()
            pages += [first(item, "00080018") for item in page]
            if len(page) < 7:
                break
        check(sorted(pages) == sorted(p), f"instance pages cover every primary instance once: {len(pages)} of {len(p)}")

        # includefield: columns, a stored attribute, `all`.
        included = self.client.search_for_instances(
            study_instance_uid=s1, series_instance_uid=a_series, fields=["00080008", "SliceThickness"])
        source = p[first(included[0], "00080018")]
        check(values(included[0], "00080008") == list(source.ImageType), "includefield ImageType (a stored attribute)")
        check(values(included[0], "00180050") == [float(source.SliceThickness)], "includefield by keyword")
        everything_of = self.get(f"/studies/{s2}/series", {"includefield": "all"}).json()[0]
        check(first(everything_of, "00080070") == text(next(d for d in p.values() if text(d, "StudyID") == "S2"), "Manufacturer"),
              "includefield=all at series level holds the series' stored attributes")
        study_all = self.get("/studies", {"StudyInstanceUID": s2, "includefield": "all"}).json()[0]
        check("00080060" not in study_all and first(study_all, "00081030") == "Knee MR", "includefield=all at study level")

        # RetrieveStudy and RetrieveSeries (beyond HealthImaging, as PACS ask): every primary instance once.
        retrieved = self.client.retrieve_study(s1)
        check(sorted(d.SOPInstanceUID for d in retrieved) == sorted(self.uids("instance", lambda d: text(d, "StudyInstanceUID") == s1)),
              "RetrieveStudy answers the study's instances")
        check({d.PatientID for d in retrieved} == {"P-100"}, "RetrieveStudy's instances are the study's")
        one_series = self.client.retrieve_series(s1, a_series)
        check(sorted(d.SOPInstanceUID for d in one_series) == sorted(self.uids("instance", lambda d: text(d, "SeriesInstanceUID") == a_series)),
              "RetrieveSeries answers the series' instances")
        self.get("/studies/1.2.3.999", expect=404)
        self.count += 3

        # imageSetId reaches the non-primary image set, at every level.
        conflict_study, conflict_series = text(self.conflict, "StudyInstanceUID"), text(self.conflict, "SeriesInstanceUID")
        scope = {"imageSetId": self.non_primary_id}
        np_series = self.get(f"/studies/{conflict_study}/series", scope).json()
        check(len(np_series) == 1 and first(np_series[0], "00100020") == "SOMEONE-ELSE"
              and first(np_series[0], "00081190").endswith("?imageSetId=" + self.non_primary_id), f"imageSetId series: {np_series}")
        np_instances = self.get("/instances", scope).json()
        check([first(item, "00080018") for item in np_instances] == [text(self.conflict, "SOPInstanceUID")], "imageSetId instances")
        np_study = self.get("/studies", scope).json()
        check(len(np_study) == 1 and first(np_study[0], "00201208") == 1, "imageSetId study")
        primary_ids = {first(item, "00100020") for item in self.get(f"/studies/{conflict_study}/series").json()}
        check("SOMEONE-ELSE" not in primary_ids, "without imageSetId, primary image sets only")

        # Refusals and warnings.
        refusals = {
            "limit=0": {"limit": "0"}, "limit=x": {"limit": "x"}, "offset past 9000": {"offset": "9001"},
            "fuzzymatching=yes": {"fuzzymatching": "yes"}, "StudyDate=2023": {"StudyDate": "2023"},
            "StudyDate=a-b-c": {"StudyDate": "20200101-20210101-20220101"}, "SeriesNumber=x": {"SeriesNumber": "x"},
            "51 includefields": {"includefield": ",".join(["00100010"] * 51)},
            "bad imageSetId": {"imageSetId": "../../x"},
        }
        for name, params in refusals.items():
            level = "/series" if "SeriesNumber" in params else "/studies"
            self.get(level, params, expect=400)
        self.get("/studies?PatientID=1&PatientID=2", expect=400)
        self.get("/studies?" + "&".join(["includefield=00100010"] * 1000), expect=400)
        warned = self.get("/studies", {"NoSuchKey": "1", "limit": "5000"})
        check("NoSuchKey" in warned.headers.get("Warning", ""), f"an ignored key is named in Warning: {warned.headers}")
        check(len(warned.json()) == len(everything), "an ignored key filters nothing")
        check(self.session.get(self.base.rsplit("/", 1)[0] + "/" + "0" * 32 + "/studies").status_code == 404, "unknown data store")
        unsigned = __import__("requests").get(self.base + "/studies")
        check(unsigned.status_code == 403, f"an unsigned search is refused: {unsigned.status_code}")

        # An update and a deletion show in the next search.
        c_series = text(next(d for d in p.values() if text(d, "StudyID") == "S2"), "SeriesInstanceUID")
        updatable = os.path.join(self.work, "qido-update.json")
        json.dump({"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "Knee MRI"}}}, open(updatable, "w"))
        self.cli("image-set", "update", "--datastore-id", self.datastore, "--latest-version", "1", "--updatable", updatable,
                 self.image_set_of_series[c_series])
        check(self.get("/studies", {"StudyDescription": "Knee MR"}).json() == [], "the old description no longer matches")
        renamed = self.get("/studies", {"StudyDescription": "Knee MRI"}).json()
        check([first(item, "0020000D") for item in renamed] == [s2], "the updated description matches")
        check(first(self.get("/studies").json()[0], "0020000D") == s2, "the updated study is first (newest update)")
        e_series = text(next(d for d in p.values() if text(d, "SOPClassUID") == SC), "SeriesInstanceUID")
        deleted = self.session.post(f"{self.base}/imageSet/{self.image_set_of_series[e_series]}/deleteImageSet")
        check(deleted.status_code == 200, f"DeleteImageSet: {deleted.status_code} {deleted.text[:200]}")
        after = self.get("/studies", {"StudyInstanceUID": s3}).json()
        check(len(after) == 1 and first(after[0], "00201206") == 1 and values(after[0], "00080061") == ["CT"],
              f"a deleted series leaves its study's counts: {after}")
        check(self.get(f"/studies/{s3}/series/{e_series}/instances").json() == [], "a deleted series' instances are gone")
        self.count += 4
        seen["qidoSearches"] = self.count
