import HiFCCore
import XCTest

@testable import Engine

/// Which requests' steps the engine may launch the next step behind before their tokens are back:
/// those whose token the backend picks where the next step can take it.
final class LaunchBehindTests: XCTestCase {
    private func progress(_ sampling: SamplingParams) -> RequestProgress {
        let loaded = EngineFixture.loaded
        return RequestProgress(
            request: GenerationRequest(id: "r", promptTokens: [1, 2, 3], sampling: sampling), tokenizer: loaded.tokenizer,
            eos: loaded.eosTokenIDs)
    }

    func testADrawMadeOnTheHostOfABackendThatRunsAheadHoldsTheNextLaunch() {
        let greedy = progress(SamplingParams(maxTokens: 4, temperature: 0))
        let drawn = progress(SamplingParams(maxTokens: 4, temperature: 0.8, topP: 0.9, seed: 1))
        let logprobs = progress(SamplingParams(maxTokens: 4, temperature: 0.8, seed: 1, logprobs: 2))
        let penalized = progress(SamplingParams(maxTokens: 4, temperature: 0.8, seed: 1, presencePenalty: 0.5))
        for queuesDraws in [false, true] {
            XCTAssertTrue(greedy.mayBeLaunchedBehind(queuesDraws: queuesDraws), "an argmax is always where the next step is")
            XCTAssertFalse(logprobs.mayBeLaunchedBehind(queuesDraws: queuesDraws), "log probabilities need the logits on the host")
            XCTAssertFalse(penalized.mayBeLaunchedBehind(queuesDraws: queuesDraws), "a penalty needs the host's sampler")
        }
        XCTAssertTrue(drawn.mayBeLaunchedBehind(queuesDraws: true))
        XCTAssertFalse(drawn.mayBeLaunchedBehind(queuesDraws: false), "the launch would wait for the step to draw on the host")
    }
}
