#Requires -Version 5.1
<#
.SYNOPSIS
    Provision this Windows device's Entra Agent User: a thin wrapper around `entraclaw setup`.

.DESCRIPTION
    Finds Python 3.10+ (py launcher first, then python on PATH), makes a venv, installs the
    entraclaw wheel into it and runs `entraclaw setup` with every argument passed through.
    All logic (Blueprint, TPM key, certificate, Agent Identity, Agent User, consent, config,
    smoke test, resume after a crash, --dry-run, --rollback) lives in Python, where it is tested.
    The exit code of `entraclaw setup` is this script's exit code.

.EXAMPLE
    .\scripts\setup-windows.ps1 -Wheel .\dist\entraclaw-0.1.0-cp312-cp312-win_amd64.whl -- --tenant <id> --device-code --dry-run

.EXAMPLE
    .\scripts\setup-windows.ps1 -- --tenant <id> --admin-app-id <id> --admin-cert-thumbprint <SHA1> --sponsor admin@contoso.com
#>
[CmdletBinding()]
param(
    # The entraclaw wheel (or a requirement such as "entraclaw==0.1.0"); default: the newest wheel in .\dist.
    [string]$Wheel,
    # Where the venv goes; default: %LOCALAPPDATA%\entraclaw\venv.
    [string]$Venv = (Join-Path $env:LOCALAPPDATA 'entraclaw\venv'),
    # Everything after -- goes to `entraclaw setup` unchanged.
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$EntraclawArgs
)

# Process scope only: activating a venv must not change the machine's or the user's policy.
Set-ExecutionPolicy -Scope Process -ExecutionPolicy Bypass -Force
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'entraclaw-venv.ps1')

$python = Install-EntraclawVenv -Venv $Venv -Wheel $Wheel
& $python -m entraclaw setup @EntraclawArgs
exit $LASTEXITCODE
