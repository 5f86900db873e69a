#Requires -Version 5.1
<#
.SYNOPSIS
    Rotate this Windows device's Blueprint key: a thin wrapper around `entraclaw rotate`.

.DESCRIPTION
    Finds Python 3.10+, makes or reuses the venv, installs the entraclaw wheel and runs
    `entraclaw rotate`: new TPM key and certificate -> addKey (proof by the old key) -> a real
    Hop 1 with the new key -> config switched -> removeKey of the old (proof by the new key)
    -> old key deleted. Killed at any step, the device still authenticates and the next run
    finishes the job. -Force rotates whatever the expiry; other arguments go to `entraclaw rotate`.
    The exit code of `entraclaw rotate` is this script's exit code.

.EXAMPLE
    .\scripts\deploy-windows.ps1 -- --as-blueprint

.EXAMPLE
    .\scripts\deploy-windows.ps1 -Force -- --device-code
#>
[CmdletBinding()]
param(
    [string]$Wheel,
    [string]$Venv = (Join-Path $env:LOCALAPPDATA 'entraclaw\venv'),
    # Rotate now, whatever the certificate's expiry (`entraclaw rotate --force`).
    [switch]$Force,
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$EntraclawArgs
)

Set-ExecutionPolicy -Scope Process -ExecutionPolicy Bypass -Force
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'entraclaw-venv.ps1')

$python = Install-EntraclawVenv -Venv $Venv -Wheel $Wheel
$rotateArgs = @()
if ($Force) { $rotateArgs += '--force' }
if ($EntraclawArgs) { $rotateArgs += $EntraclawArgs }
& $python -m entraclaw rotate @rotateArgs
exit $LASTEXITCODE
