import Foundation
import Testing

/// Crafted codestreams against the built CLI (scripts/codecs/codec_helpers_e2e.py): the decoders of outside input
/// run in codec helper processes, so an assertion, a spin, a memory blow-up or a killed helper costs one frame.
@Suite(.serialized) struct CodecHelperTests {
    func scenario(_ name: String) throws { try ScenarioScript.run("scripts/codecs/codec_helpers_e2e.py", scenario: name) }

    @Test func fortyAssertionTrippingFramesCostTheirFilesAndStayUnder300MB() throws { try scenario("assertions") }

    @Test func aFrameOf65280TilesStaysUnder300MB() throws { try scenario("tiles") }

    @Test func aSpinningDecoderIsStoppedAndAKilledHelperCostsOneFrame() throws { try scenario("spin-kill") }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["S3_TEST_ENDPOINT"] != nil, "needs S3_TEST_ENDPOINT (scripts/test.sh)"))
    func aServerGivenThreeJobsOfCraftedFramesDoesNotGrow() throws { try scenario("serve") }
}
