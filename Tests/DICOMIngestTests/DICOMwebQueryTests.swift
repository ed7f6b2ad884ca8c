import DICOMCore
@testable import DICOMIngest
import DICOMIngestModel
import Testing

/// QIDO-RS queries as `DICOMwebQuery.parse` reads them (PS3.18 §10.6.1, PS3.4 C.2.2.2) and answers as
/// `DICOMwebSearch.answer` writes them (PS3.18 F.2, Table 10.6.3-3).
@Suite struct DICOMwebQueryTests {
    static func parse(_ level: SearchLevel, _ parameters: [(String, String)]) throws -> DICOMwebQuery {
        try DICOMwebQuery.parse(level: level, parameters: parameters)
    }

    static func condition(_ query: DICOMwebQuery, _ attribute: SearchAttribute) -> SearchCondition? {
        query.matches.first { $0.attribute == attribute }?.condition
    }

    @Test func eachValueBecomesTheConditionItsVRAllows() throws {
        let query = try Self.parse(.instance, [
            ("PatientName", "Doe*"), ("00100020", "P1"), ("StudyInstanceUID", "1.2\\1.3"), ("StudyDate", "20240101-"),
            ("StudyTime", "09:30-10"), ("SeriesNumber", " 4"), ("AccessionNumber", ""), ("SOPInstanceUID", "1.2.3"),
        ])
        #expect(Self.condition(query, .patientName) == .pattern("Doe*"))
        #expect(Self.condition(query, .patientID) == .equal("P1"))
        #expect(Self.condition(query, .studyInstanceUID) == .anyOf(["1.2", "1.3"]))
        #expect(Self.condition(query, .studyDate) == .range(lower: "20240101", upper: ""))
        #expect(Self.condition(query, .studyTime) == .range(lower: "0930", upper: "10"))
        #expect(Self.condition(query, .seriesNumber) == .equal("4"))
        // An empty value matches everything (universal matching).
        #expect(Self.condition(query, .accessionNumber) == nil)
        #expect(Self.condition(query, .sopInstanceUID) == .equal("1.2.3"))
        let fuzzy = try Self.parse(.study, [("fuzzymatching", "true"), ("PatientName", "doe"), ("StudyDescription", "x")])
        #expect(Self.condition(fuzzy, .patientName) == .nameStart("DOE"))
        #expect(Self.condition(fuzzy, .studyDescription) == .equal("x"))
    }

    @Test func thePathNamesTheStudyAndSeries() throws {
        let query = try DICOMwebQuery.parse(level: .instance, study: "1.2", series: "1.2.3", parameters: [])
        #expect(query.matches == [
            SearchMatch(attribute: .studyInstanceUID, condition: .equal("1.2")),
            SearchMatch(attribute: .seriesInstanceUID, condition: .equal("1.2.3")),
        ])
    }

    @Test func keysOfAnotherLevelOrUnknownOnesAreIgnoredAndNamed() throws {
        let query = try Self.parse(.study, [("SOPInstanceUID", "1.2"), ("Nonsense", "1"), ("ModalitiesInStudy", "CT\\MR")])
        #expect(query.matches.isEmpty)
        #expect(query.ignored == ["SOPInstanceUID", "Nonsense"])
        #expect(query.modalitiesInStudy == ["CT", "MR"])
        let series = try Self.parse(.series, [("ModalitiesInStudy", "CT")])
        #expect(series.modalitiesInStudy.isEmpty && series.ignored == ["ModalitiesInStudy"])
    }

    @Test func pagesAndFieldsHaveHealthImagingsBounds() throws {
        #expect(try Self.parse(.study, []).limit == 1_000)
        let clamped = try Self.parse(.study, [("limit", "5000"), ("offset", "9000")])
        #expect(clamped.limit == 1_000 && clamped.offset == 9_000 && clamped.ignored == ["limit past 1000"])
        let fields = try Self.parse(.instance, [("includefield", "00081030,PatientAge"), ("includefield", "00081032.00080100")])
        #expect(fields.includedTags == [DICOMTag(group: 0x0008, element: 0x1030), DICOMTag(group: 0x0010, element: 0x1010),
                                        DICOMTag(group: 0x0008, element: 0x1032)])
        #expect(fields.needsStoredAttributes)
        #expect(try !Self.parse(.study, [("includefield", "00081030,00080061")]).needsStoredAttributes)
        // OHIF's study list asks Modality, which no study-level data set holds: nothing to read for it.
        #expect(try !Self.parse(.study, [("includefield", "00081030,00080060")]).needsStoredAttributes)
        #expect(try !Self.parse(.study, [("includefield", "Manufacturer")]).needsStoredAttributes)
        #expect(try Self.parse(.series, [("includefield", "Manufacturer")]).needsStoredAttributes)
        #expect(try Self.parse(.study, [("includefield", "PatientAge")]).needsStoredAttributes)
        #expect(try Self.parse(.series, [("includefield", "all")]).includeAll)
        for bad: [(String, String)] in [
            [("limit", "0")], [("limit", "x")], [("offset", "9001")], [("offset", "-1")], [("fuzzymatching", "yes")],
            [("includefield", Array(repeating: "00100010", count: 51).joined(separator: ","))],
            [("StudyDate", "2024")], [("StudyDate", "1-2-3")], [("StudyDate", "-")], [("StudyTime", "10h")],
            [("SeriesNumber", "four")], [("PatientID", "1"), ("PatientID", "2")], [("imageSetId", "../x")],
            [("PatientName", String(repeating: "a", count: 1_025))],
        ] {
            #expect(throws: IngestServiceError.self, "\(bad.map(\.0))") { try Self.parse(.series, bad) }
        }
    }

    @Test func theAnswerHoldsEachLevelsValuesCountsAndRetrieveURL() throws {
        var match = DICOMwebMatch(
            values: [.studyInstanceUID: "1.2", .seriesInstanceUID: "1.2.3", .sopInstanceUID: "1.2.3.4", .patientName: "Doe^Jane=ドウ",
                     .instanceNumber: "7", .rows: "64", .modality: "CT"],
            relatedInstances: 3, imageSetId: "0123456789abcdef0123456789abcdef")
        match.stored = [("ImageType", .array([.string("ORIGINAL"), .string("PRIMARY")])), ("PatientName", .string("ignored"))]
        var query = try DICOMwebQuery.parse(level: .instance, parameters: [("includefield", "ImageType")])
        query.imageSetId = match.imageSetId
        let answer = try JSONValue.parse(DICOMwebSearch.answer([match], query: query, baseURI: "http://h/datastore/d"))
        guard case .array(let items) = answer, let item = items.first else {
            Issue.record("not an array: \(answer)")
            return
        }
        #expect(item["00100010"]?["Value"]?[0]?["Alphabetic"] == .string("Doe^Jane"))
        #expect(item["00100010"]?["Value"]?[0]?["Ideographic"] == .string("ドウ"))
        #expect(item["00200013"]?["Value"]?[0] == .int(7))
        #expect(item["00280010"]?["vr"] == .string("US"))
        #expect(item["00280010"]?["Value"]?[0] == .int(64))
        #expect(item["00080008"]?["Value"] == .array([.string("ORIGINAL"), .string("PRIMARY")]))
        #expect(item["00081190"]?["Value"]?[0] == .string("http://h/datastore/d/studies/1.2/series/1.2.3/instances/1.2.3.4?imageSetId=\(match.imageSetId)"))
        // Instance answers carry no study-level counts.
        #expect(item["00201208"] == nil)

        match.relatedSeries = 2
        match.modalitiesInStudy = ["CT", "MR"]
        let study = try JSONValue.parse(DICOMwebSearch.answer([match], query: DICOMwebQuery(level: .study), baseURI: "http://h/datastore/d"))
        #expect(study[0]?["00201206"]?["Value"]?[0] == .int(2))
        #expect(study[0]?["00201208"]?["Value"]?[0] == .int(3))
        #expect(study[0]?["00080061"]?["Value"] == .array([.string("CT"), .string("MR")]))
        #expect(study[0]?["00080060"] == nil)
        #expect(study[0]?["00081190"]?["Value"]?[0] == .string("http://h/datastore/d/studies/1.2"))
    }

    @Test func nameWordsStartEachComponent() {
        #expect(DICOMwebSearch.nameWords("Müller^Jürgen=ミュラー") == " MÜLLER JÜRGEN ミュラー")
        #expect(DICOMwebSearch.nameWords("") == "")
    }
}

extension JSONValue {
    /// An array's item, for reading answers.
    fileprivate subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }
}
