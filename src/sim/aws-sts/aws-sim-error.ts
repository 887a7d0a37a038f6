/** An error the simulated AWS answers, with AWS's error code (STS API reference, "Errors"). */
export class AwsSimError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly type: 'Sender' | 'Receiver' = 'Sender',
  ) {
    super(message);
  }
}
