import DICOMIngest
import DICOMIngestModel
import Testing

@Suite struct ImportJobStateMachineTests {
    @Test func runsSubmittedToCompleted() {
        var machine = ImportJob.StateMachine()
        #expect(machine.status == .submitted)
        #expect(machine.start() == .startPipeline)
        #expect(machine.status == .inProgress)
        #expect(machine.pipelineFinished() == .finish(.completed, message: nil))
        #expect(machine.isTerminal)
    }

    @Test func failsWithASanitisedMessage() {
        var machine = ImportJob.StateMachine()
        _ = machine.start()
        let action = machine.jobFailed("Cannot list s3://bucket/in?x=[1]; {oops}")
        guard case .finish(.failed, let message?) = action else {
            Issue.record("expected a FAILED finish")
            return
        }
        #expect(!message.contains("?"))
        #expect(!message.contains("["))
        #expect(!message.contains("{"))
        #expect(message.hasPrefix("Cannot list s3://bucket/in"))
    }

    @Test func ignoresEventsThatDoNotApply() {
        var machine = ImportJob.StateMachine()
        #expect(machine.pipelineFinished() == .none)
        _ = machine.start()
        _ = machine.pipelineFinished()
        #expect(machine.start() == .none)
        #expect(machine.jobFailed("late") == .none)
        #expect(machine.status == .completed)
    }

    /// A job a stopped process left IN_PROGRESS starts again (it resumes); an ended one does not.
    @Test func resumesAJobLeftInProgress() {
        var machine = ImportJob.StateMachine(status: .inProgress)
        #expect(machine.start() == .startPipeline)
        #expect(machine.status == .inProgress)
        var failed = ImportJob.StateMachine(status: .failed)
        #expect(failed.start() == .none)
    }
}

@Suite struct ImageSetGroupingTests {
    func key(_ series: String, patient: String = "P1", name: String = "A^B", date: String = "20240101") -> ImageSetKey {
        ImageSetKey(studyInstanceUID: "1.2", seriesInstanceUID: series, patientID: patient, patientName: name, studyDate: date)
    }

    @Test func majorityKeyBecomesPrimaryAndEachOtherKeyGetsANonPrimarySet() {
        let candidates: [ImageSetGrouping.Candidate] = [
            .init(inputKey: "a/1.dcm", sopInstanceUID: "1", key: key("9")),
            .init(inputKey: "a/2.dcm", sopInstanceUID: "2", key: key("9", patient: "OTHER")),
            .init(inputKey: "a/3.dcm", sopInstanceUID: "3", key: key("9")),
            .init(inputKey: "a/4.dcm", sopInstanceUID: "4", key: key("9", name: "X^Y")),
            .init(inputKey: "a/5.dcm", sopInstanceUID: "5", key: key("9", name: "X^Y")),
        ]
        let groups = ImageSetGrouping.decide(candidates, existingPrimaryKey: nil)
        #expect(groups.count == 3)
        #expect(groups[0].isPrimary)
        #expect(groups[0].members == [0, 2])
        #expect(groups.dropFirst().allSatisfy { !$0.isPrimary })
        #expect(Set(groups.dropFirst().map(\.members)) == [[1], [3, 4]])
        #expect(groups.allSatisfy { $0.overwritten.isEmpty })
    }

    @Test func decisionDoesNotDependOnArrivalOrder() {
        let candidates: [ImageSetGrouping.Candidate] = [
            .init(inputKey: "b.dcm", sopInstanceUID: "2", key: key("9", date: "20000101")),
            .init(inputKey: "a.dcm", sopInstanceUID: "1", key: key("9")),
        ]
        let forward = ImageSetGrouping.decide(candidates, existingPrimaryKey: nil)
        let backward = ImageSetGrouping.decide(candidates.reversed(), existingPrimaryKey: nil)
        // Tie: the key of the input that sorts first ("a.dcm") is primary, whatever the order.
        #expect(forward[0].key == key("9"))
        #expect(backward[0].key == key("9"))
    }

    @Test func existingPrimaryKeyWins() {
        let candidates: [ImageSetGrouping.Candidate] = [
            .init(inputKey: "1", sopInstanceUID: "1", key: key("9", patient: "NEW")),
            .init(inputKey: "2", sopInstanceUID: "2", key: key("9", patient: "NEW")),
            .init(inputKey: "3", sopInstanceUID: "3", key: key("9")),
        ]
        let groups = ImageSetGrouping.decide(candidates, existingPrimaryKey: key("9"))
        #expect(groups[0] == .init(key: key("9"), isPrimary: true, members: [2]))
        #expect(groups[1] == .init(key: key("9", patient: "NEW"), isPrimary: false, members: [0, 1]))
    }

    @Test func copiesOfOneSOPInstanceAreAllImportedAndTheLastInputKeyWins() {
        let candidates: [ImageSetGrouping.Candidate] = [
            .init(inputKey: "z.dcm", sopInstanceUID: "1", key: key("9")),
            .init(inputKey: "a.dcm", sopInstanceUID: "1", key: key("9")),
            .init(inputKey: "m.dcm", sopInstanceUID: "1", key: key("9")),
        ]
        let groups = ImageSetGrouping.decide(candidates, existingPrimaryKey: nil)
        #expect(groups == [.init(key: key("9"), isPrimary: true, members: [0], overwritten: [.init(copy: 1, by: 0), .init(copy: 2, by: 0)])])
    }

    /// A copy whose key differs from the primary's goes to a non-primary set, as a copy from another job would;
    /// copies do not tip the choice of the primary key (it counts SOP instances, not files).
    @Test func copiesWithAnotherKeyGoToANonPrimarySetAndDoNotOutvoteInstances() {
        let candidates: [ImageSetGrouping.Candidate] = [
            .init(inputKey: "c1.dcm", sopInstanceUID: "1", key: key("9", patient: "COPY")),
            .init(inputKey: "c2.dcm", sopInstanceUID: "1", key: key("9", patient: "COPY")),
            .init(inputKey: "c3.dcm", sopInstanceUID: "1", key: key("9", patient: "COPY")),
            .init(inputKey: "x1.dcm", sopInstanceUID: "1", key: key("9")),
            .init(inputKey: "x2.dcm", sopInstanceUID: "2", key: key("9")),
        ]
        for arrival in [candidates, candidates.reversed()] {
            let groups = ImageSetGrouping.decide(arrival, existingPrimaryKey: nil)
            #expect(groups.count == 2)
            #expect(groups.map(\.key) == [key("9"), key("9", patient: "COPY")])
            #expect(groups.map { $0.members.map { arrival[$0].inputKey } } == [["x1.dcm", "x2.dcm"], ["c3.dcm"]])
            #expect(groups[1].overwritten.map { [arrival[$0.copy].inputKey, arrival[$0.by].inputKey] } == [["c1.dcm", "c3.dcm"], ["c2.dcm", "c3.dcm"]])
        }
    }

    @Test func keyRoundTripsThroughItsEncoding() {
        let original = key("1.2.3", name: "Müller^Jürgen")
        #expect(ImageSetKey(encoded: original.encoded) == original)
        #expect(original.differences(from: key("1.2.3")) == ["PatientName"])
    }
}

@Suite struct StartDICOMImportJobRequestTests {
    let valid = StartDICOMImportJobRequest(
        datastoreId: String(repeating: "a", count: 32), jobName: "my-job",
        dataAccessRoleArn: "arn:aws:iam::123456789012:role/ImportJobDataAccessRole",
        clientToken: "90ece54b-9b35-4a01-a5a1-842646445383", inputS3Uri: "s3://medical-imaging-dicom-input/dicom_input/",
        outputS3Uri: "s3://medical-imaging-output/job_output/")

    @Test func acceptsTheDocumentedExample() throws {
        try valid.validate()
        var local = valid
        local.inputS3Uri = "file:///data/in/"
        try local.validate()
    }

    @Test(arguments: [
        ("datastoreId", "UPPERCASE0123456789012345678901"), ("clientToken", "has space"),
        ("inputS3Uri", "s3://A_bad_bucket/in"), ("outputS3Uri", "ftp://host/out"),
        ("dataAccessRoleArn", "arn:aws:iam::12:role/x"), ("jobName", "bad name"),
    ])
    func rejectsEachMalformedFieldNamingIt(field: String, value: String) {
        var request = valid
        switch field {
        case "datastoreId": request.datastoreId = value
        case "clientToken": request.clientToken = value
        case "inputS3Uri": request.inputS3Uri = value
        case "outputS3Uri": request.outputS3Uri = value
        case "dataAccessRoleArn": request.dataAccessRoleArn = value
        default: request.jobName = value
        }
        do {
            try request.validate()
            Issue.record("\(field) accepted")
        } catch {
            #expect(error.code == .validationException)
            #expect(error.code.httpStatus == 400)
            #expect(error.message.contains("'\(field)'"))
        }
    }

    /// `import --resume` of a FAILED job (issue 22); nothing else reopens one, and an ended job does not start.
    @Test func onlyAFailedJobReopens() {
        var failed = ImportJob.StateMachine(status: .failed, message: "DICOM import job has failed. disk full")
        #expect(failed.start() == .none)
        #expect(failed.reopen() == .startPipeline)
        #expect(failed.status == .inProgress && failed.message == nil)
        #expect(failed.pipelineFinished() == .finish(.completed, message: nil))
        var completed = ImportJob.StateMachine(status: .completed)
        #expect(completed.reopen() == .none)
        var running = ImportJob.StateMachine(status: .inProgress)
        #expect(running.reopen() == .none)
        #expect(running.status == .inProgress)
    }

    @Test func statusTableMatchesTheModel() {
        #expect(IngestServiceError.Code.serviceQuotaExceededException.httpStatus == 402)
        #expect(IngestServiceError.Code.conflictException.httpStatus == 409)
        #expect(IngestServiceError.Code.throttlingException.httpStatus == 429)
    }
}
