import DICOMIngest
import Testing

/// The engine's defaults: a memory budget that leaves every thread room for a codestream frame.
@Suite struct EngineConfigurationTests {
    @Test func theDefaultBudgetIs160MiBOr64MiBAThread() {
        #expect(ImportEngine.Configuration(threads: 1).memoryBudget == 160 << 20)
        #expect(ImportEngine.Configuration(threads: 2).memoryBudget == 160 << 20)
        #expect(ImportEngine.Configuration(threads: 3).memoryBudget == 192 << 20)
        #expect(ImportEngine.Configuration(threads: 16).memoryBudget == 1024 << 20)
    }

    @Test func aGivenBudgetIsKeptWhateverTheThreads() {
        #expect(ImportEngine.Configuration(threads: 16, memoryBudget: 64 << 20).memoryBudget == 64 << 20)
    }
}
