#!/usr/bin/env bats
# hooks/environment refuses a bad step configuration with one line naming the option,
# before it asks the agent for a Buildkite token or calls Port: buildkite-agent and curl
# are stubbed with no planned call, so any call fails the test. The agent checks
# plugin.yml's schema only when BUILDKITE_PLUGIN_VALIDATION is on, so the hook checks
# the options itself.

load helpers/plugin

setup() {
  plugin_setup
  stub buildkite-agent
  stub curl
}

# refused MESSAGE: the hook failed with MESSAGE, called nothing, exported nothing and
# left nothing behind.
refused() {
  run_hook environment
  if [[ "$status" -eq 0 ]]; then
    printf 'the hook accepted the configuration; output:\n%s\n' "$output" >&2
    return 1
  fi
  assert_output_contains "$1"
  unstub buildkite-agent
  unstub curl
  refute_job_env PORT_TOKEN
  refute_job_env PORT_PLUGIN_STATE_DIR
  assert_equal "$(state_dirs)" ''
}

@test "url is required" {
  plugin_config '{"export-token":true}'
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  refused 'the plugin option "url" is required (e.g. url: https://port.example.com)'
}

@test "url: plain http to a host other than loopback is refused" {
  export BUILDKITE_PLUGIN_PORT_URL=http://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  refused 'the plugin option "url" must be an https:// URL (http:// only for 127.0.0.1, localhost or [::1]): http://port.example.com'
}

@test "url: http to a name that only starts like localhost is refused" {
  export BUILDKITE_PLUGIN_PORT_URL=http://localhost.evil.example
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  refused 'must be an https:// URL'
}

@test "url: another scheme is refused" {
  export BUILDKITE_PLUGIN_PORT_URL=ftp://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  refused 'must be an https:// URL'
}

@test "url: credentials, a query or shell characters are refused" {
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_URL=https://user@port.example.com
  refused 'the plugin option "url" is not a plain URL (no spaces, quotes, \, $, @, ? or #): https://user@port.example.com'
  stub buildkite-agent
  stub curl
  export BUILDKITE_PLUGIN_PORT_URL='https://port.example.com/$(id)'
  refused 'is not a plain URL'
}

@test "url must be a string" {
  plugin_config '{"export-token":true,"url":42}'
  export BUILDKITE_PLUGIN_PORT_URL=42
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  refused 'plugin configuration: option "url" must be a string'
}

@test "an unknown option is refused, naming the known ones" {
  plugin_config '{"export-token":true,"scope":["deploy-token"],"url":"https://port.example.com"}'
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_SCOPE_0=deploy-token
  refused 'plugin configuration: unknown option "scope" (options: url, audience, scopes, export-token, aws-profile, aws-region, secrets)'
}

@test "scopes must be a list (from the JSON, and from the option variables alone)" {
  plugin_config '{"export-token":true,"scopes":"deploy-token","url":"https://port.example.com"}'
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_SCOPES=deploy-token
  refused 'plugin configuration: option "scopes" must be a list of credential names'
  stub buildkite-agent
  stub curl
  unset BUILDKITE_PLUGIN_CONFIGURATION
  refused 'the plugin option "scopes" must be a list, e.g. scopes: [deploy-token]'
}

@test "export-token must be true or false" {
  plugin_config '{"export-token":"yes","url":"https://port.example.com"}'
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=yes
  refused 'plugin configuration: option "export-token" must be true or false'
  stub buildkite-agent
  stub curl
  unset BUILDKITE_PLUGIN_CONFIGURATION
  refused 'the plugin option "export-token" must be true or false, not "yes"'
}

@test "secrets must be a map of variable to one credential name" {
  plugin_config '{"secrets":"npm-publish","url":"https://port.example.com"}'
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_SECRETS=npm-publish
  refused 'plugin configuration: option "secrets" must be a map of ENV_VAR: credential-name'
  stub buildkite-agent
  stub curl
  unset BUILDKITE_PLUGIN_CONFIGURATION
  refused 'the plugin option "secrets" must be a map, e.g. secrets: { NPM_TOKEN: npm-publish }'
  stub buildkite-agent
  stub curl
  unset BUILDKITE_PLUGIN_PORT_SECRETS
  plugin_config '{"secrets":{"NPM":["a","b"]},"url":"https://port.example.com"}'
  export BUILDKITE_PLUGIN_PORT_SECRETS_NPM_0=a BUILDKITE_PLUGIN_PORT_SECRETS_NPM_1=b
  refused 'plugin configuration: secret "NPM" must name one credential (a string)'
}

@test "secrets: a variable name the agent would upper-case is refused" {
  plugin_config '{"secrets":{"npm-token":"npm-publish"},"url":"https://port.example.com"}'
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_SECRETS_NPM_TOKEN=npm-publish
  refused 'plugin configuration: secrets: "npm-token" is not an environment variable name'
}

@test "secrets: forbidden variable names (the agent's, the shell's, the loader's, the plugin's own)" {
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  local name
  # One of each kind; plugin.yml's schema test (test/plugin/plugin-definition.test.ts) and
  # lib/config.bash list them all.
  for name in PATH BASH_ENV LD_PRELOAD DYLD_INSERT_LIBRARIES BUILDKITE_AGENT_ACCESS_TOKEN PORT_TOKEN AWS_PROFILE; do
    stub buildkite-agent
    stub curl
    plugin_config "{\"secrets\":{\"${name}\":\"npm-publish\"},\"url\":\"https://port.example.com\"}"
    export "BUILDKITE_PLUGIN_PORT_SECRETS_${name}=npm-publish"
    refused "secrets: \"${name}\" is reserved; choose another variable name"
    unset "BUILDKITE_PLUGIN_PORT_SECRETS_${name}"
  done
}

@test "a credential name that is not one is refused (scopes, secrets, aws-profile)" {
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_SCOPES_0='../oauth/revoke'
  refused '"../oauth/revoke" is not a credential name (lower-case letters, digits, - and _)'
  unset BUILDKITE_PLUGIN_PORT_SCOPES_0
  stub buildkite-agent
  stub curl
  export BUILDKITE_PLUGIN_PORT_SECRETS_NPM='NPM Publish'
  refused '"NPM Publish" is not a credential name'
  unset BUILDKITE_PLUGIN_PORT_SECRETS_NPM
  stub buildkite-agent
  stub curl
  export BUILDKITE_PLUGIN_PORT_AWS_PROFILE='AWS Prod'
  refused '"AWS Prod" is not a credential name'
}

@test "aws-region needs aws-profile and must be a region" {
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_AWS_REGION=eu-west-1
  refused 'the plugin option "aws-region" needs "aws-profile"'
  stub buildkite-agent
  stub curl
  export BUILDKITE_PLUGIN_PORT_AWS_PROFILE=aws-prod
  export BUILDKITE_PLUGIN_PORT_AWS_REGION=Europe
  refused 'the plugin option "aws-region" is not an AWS region (e.g. us-east-1): Europe'
}

@test "an audience with control characters is refused" {
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_AUDIENCE=$'https://port.example.com\n--claim x'
  refused 'the plugin option "audience" contains control characters'
}

@test "nothing to export is refused" {
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_SCOPES_0=deploy-token
  refused 'nothing to do: set export-token: true, aws-profile or secrets'
  stub buildkite-agent
  stub curl
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=false
  refused 'nothing to do'
}

@test "a configuration that is not JSON, or not a map, is refused" {
  plugin_config '{"url":'
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  export BUILDKITE_PLUGIN_PORT_EXPORT_TOKEN=true
  refused 'jq could not read BUILDKITE_PLUGIN_CONFIGURATION as JSON'
  stub buildkite-agent
  stub curl
  plugin_config '["url"]'
  refused 'plugin configuration: the plugin configuration is not a map of options'
}

@test "options under another plugin name (a fork named otherwise) are read from that prefix" {
  export BUILDKITE_PLUGIN_NAME=ACME_PORT
  export BUILDKITE_PLUGIN_ACME_PORT_EXPORT_TOKEN=true
  export BUILDKITE_PLUGIN_PORT_URL=https://port.example.com
  refused 'the plugin option "url" is required'
}
